"""The same call with the same seed gives the same audio on every CPU backend, by default."""

import numpy as np
import pytest

from tests.conftest import make_bundle, make_config, random_features
from vocoder.api import Vocoder
from vocoder.config import receptive_field
from vocoder.errors import VocoderError
from vocoder.runtime import folding


def test_default_synthesis_is_the_same_audio_on_every_cpu_backend(tmp_path):
    # A receptive field longer than the default fold overlap, as in real models: folded
    # segments then start from a history the unfolded run does not have.
    cfg = make_config(layers=12, stacks=1, dilation_limit=512, cond_channels=5)
    assert receptive_field(cfg) > folding.FoldSettings().overlap
    path = tmp_path / "bundle"
    make_bundle(path, cfg)
    # Long enough that the default fold settings would cut it into segments.
    n = 3 * folding.FoldSettings().min_segment
    assert len(folding.plan(n, folding.FoldSettings())) > 1
    feats = random_features(cfg, -(-n // cfg.hop_length), seed=11)
    out = {}
    for name in ("onnxruntime", "native", "torch"):
        with Vocoder.load(path, backend=name) as voc:
            out[name] = voc.synthesize(feats, seed=3)
            if name == "onnxruntime":
                out["folded"] = voc.synthesize(feats, seed=3, fold=True)
    assert np.array_equal(out["onnxruntime"], out["torch"])
    assert np.array_equal(out["native"], out["torch"])
    # What a backend that folded by default would give: other audio.
    assert not np.array_equal(out["folded"], out["torch"])


def test_mistyped_backend_options_are_clear_errors(cond_bundle):
    path = cond_bundle[0]
    for name in ("onnxruntime", "torch", "native"):
        with pytest.raises(VocoderError, match="no option 'foo'") as e:
            Vocoder.load(path, backend=name, foo=1)
        assert "threads" in str(e.value)  # names the options it does take


def test_a_backend_whose_library_is_missing_is_reported_unavailable(cond_bundle, monkeypatch):
    import sys

    from vocoder.runtime import registry

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    ok, why = registry.probe("torch")
    assert not ok and "torch is not installed" in why
    with pytest.raises(VocoderError, match="backend 'torch' is not available"):
        Vocoder.load(cond_bundle[0], backend="torch")
