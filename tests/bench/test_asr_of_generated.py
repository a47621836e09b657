"""bench.asr_of_generated: the vocoder's audio scored against the alignment it came from."""

import numpy as np
import soundfile as sf
import torch

from bench import asr_of_generated
from tests.asr.synth import PHONES, make_asr_config, write_dataset
from tests.conftest import make_bundle, make_config
from vocoder.asr.bundle import save_asr_bundle
from vocoder.asr.model import ASRWaveNet
from vocoder.asr.recognize import evaluate_asr


def _bundles(tmp_path):
    data = write_dataset(tmp_path / "data", n_train=2, n_test=3)
    torch.manual_seed(0)
    asr = save_asr_bundle(ASRWaveNet(make_asr_config()), PHONES, tmp_path / "asr")
    voc = tmp_path / "voc"
    make_bundle(voc, make_config(cond_channels=len(PHONES) + 2, upsample_scales=(2, 4)))
    return data, asr, voc


def test_generated_speech_is_scored_like_the_recordings(tmp_path, monkeypatch):
    data, asr, voc = _bundles(tmp_path)
    res = asr_of_generated.measure(voc, asr, data, n=2, backend="onnxruntime",
                                   switch_penalty=1.0)
    ref = evaluate_asr(asr, data, n=2, switch_penalty=1.0, progress=False)
    assert res["utterances"] == 2
    assert res["recordings"]["per"] == ref["per"]
    assert res["recordings"]["frame_accuracy"] == ref["frame_accuracy"]
    assert np.isfinite(res["generated"]["per"])
    # A vocoder that gave back the recording itself would lose nothing: the generated
    # audio is lined up with the labels exactly as the recording is.
    from vocoder.api import Vocoder

    recordings = iter(sf.read(data / "wavs" / f"utt00{i}.wav", dtype="float32")[0]
                      for i in (2, 3))
    monkeypatch.setattr(Vocoder, "synthesize", lambda self, *a, **k: next(recordings))
    perfect = asr_of_generated.measure(voc, asr, data, n=2, backend="onnxruntime",
                                       switch_penalty=1.0)
    assert perfect["generated"] == perfect["recordings"]
