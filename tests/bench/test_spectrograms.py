"""bench.spectrograms on a tagged dataset without features: the model generates as long
as the clip, conditioned on the clip's tags, and the figure is written."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from bench import spectrograms
from tests.conftest import make_bundle, make_config
from tests.train.synth_tags import TAGS, write_tagged_dataset
from vocoder.api import Vocoder
from vocoder.data.corpus import load_manifest


def test_a_tag_model_generates_the_clip_with_its_tags(tmp_path):
    data = write_tagged_dataset(tmp_path / "d", n_train=2, n_test=1, samples=3000)
    cfg = make_config(cond_channels=0, gc_channels=len(TAGS))
    make_bundle(tmp_path / "b", cfg)
    out, wavs = tmp_path / "s.png", tmp_path / "wavs"
    assert spectrograms.main(["--data", str(data), "--utt", "clip000", "--bundle",
                              f"tiny={tmp_path / 'b'}", "--out", str(out),
                              "--wav-dir", str(wavs), "--max-hz", "8000"]) == 0
    assert out.stat().st_size > 0
    gen, sr = sf.read(wavs / "clip000-tiny.wav", dtype="float32")
    ds = load_manifest(data)
    entry = next(e for e in ds.entries if e.id == "clip000")
    audio, _ = ds.load(entry)
    assert len(gen) == len(audio) == 3000
    with Vocoder.load(tmp_path / "b", backend="native") as voc:
        ref = voc.synthesize(None, gc=ds.gc(entry), n_samples=3000, seed=0)
        other = voc.synthesize(None, gc=np.zeros(len(TAGS), np.float32), n_samples=3000,
                               seed=0)
    assert np.abs(gen - np.clip(ref, -1, 1)).max() <= 1.5 / 32768  # PCM16
    assert np.abs(ref - other).max() > 0  # the tags reached the model
