"""The shipped mel demo bundle: complete, current, its documented numbers its own, and
copy synthesis of a held-out recording re-measured."""

import numpy as np
import soundfile as sf

from tests.shipped import ROOT, check_documented_evaluation
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle

DEMO_MEL = ROOT / "models" / "demo-mel"
HELD_OUT = ROOT / "examples" / "demo-0.wav"  # a test-split recording of the corpus


def test_mel_demo_is_complete_and_its_export_current():
    b = load_bundle(DEMO_MEL)
    assert b.feature_spec is not None and b.feature_spec.mel is not None
    assert b.feature_spec.mel.hop_length == b.config.hop_length
    with Vocoder.load(DEMO_MEL) as voc:  # refuses stale ONNX files
        assert voc.mel_config.n_mels == b.config.cond_channels


def test_the_documented_evaluation_is_of_the_shipped_weights():
    check_documented_evaluation(DEMO_MEL, "## Mel spectrograms", "\n### ", lambda ev: [
        f"{ev['stoi_mean']:.2f}", f"{100 * ev['asr_wer']:.1f} %",
        f"{100 * ev['asr_wer_reference']:.1f} %", f"{ev['mcd_db']:.1f} dB"])


def test_copy_synthesis_of_a_held_out_recording_is_intelligible():
    """A re-measurement: `resynth` of a recording the model never trained on, scored
    by STOI against it, with the bundle's default mel post-filter (twelve passes) and
    without it."""
    from vocoder.intelligibility import stoi_score
    from vocoder.resynth import resynthesize

    audio, sr = sf.read(HELD_OUT, dtype="float32")
    with Vocoder.load(DEMO_MEL, backend="native") as voc:
        assert voc.sampling.postfilter == 12
        out = resynthesize(voc, audio, sr, seed=0)
        raw = resynthesize(voc, audio, sr, seed=0, postfilter=0)
    assert out.shape == raw.shape == audio.shape and np.isfinite(out).all()
    assert stoi_score(audio, out, sr) >= 0.85
    assert stoi_score(audio, out, sr) > stoi_score(audio, raw, sr) + 0.05
