"""The shipped demo bundle and examples: what README's first command runs."""

from pathlib import Path

import numpy as np
import pytest

from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.inputs import load_features_file

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "models" / "demo"
EXAMPLES = sorted((ROOT / "examples").glob("demo-*.npz"))


def test_demo_bundle_is_complete_and_its_export_current():
    b = load_bundle(DEMO)
    assert b.feature_spec is not None and b.feature_spec.dim == b.config.cond_channels
    assert b.training["corpus"]["speakers"], "say needs the corpus voices"
    with Vocoder.load(DEMO) as voc:  # refuses stale ONNX files
        assert voc.backend_name == "onnxruntime"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_fit_the_demo_model_and_synthesise(path):
    feats, extras = load_features_file(path)
    with Vocoder.load(DEMO) as voc:
        assert feats.shape[1] == voc.config.cond_channels
        assert 0 <= extras["speaker"] < voc.config.n_speakers
        audio = voc.synthesize(feats[:20], speaker=extras["speaker"], seed=0)
    assert audio.shape == (20 * voc.hop_length,) and np.isfinite(audio).all()


def test_there_are_examples():
    assert len(EXAMPLES) >= 2
