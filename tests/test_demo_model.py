"""The shipped demo bundle and examples: what README's first command runs."""


import numpy as np
import pytest

from tests.shipped import ROOT, check_documented_evaluation
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.inputs import load_features_file

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


def test_the_documented_evaluation_is_of_the_shipped_weights():
    """models/demo/evaluation.json (the numbers README quotes) measured these weights."""
    check_documented_evaluation(DEMO, "### The shipped demo model", "\n## ", lambda ev: [
        f"{100 * ev['vuv_error_rate']:.0f} %", f"{ev['f0_error_cents_median']:.0f} c",
        f"{ev['mcd_db']:.1f} dB", f"{ev['stoi_mean']:.2f}",
        f"{ev['nll_bits_per_sample']:.2f}", f"{ev['mcd_db_quantized_reference']:.1f} dB"])


def test_the_demo_model_voices_what_its_features_mark_voiced():
    """A re-measurement, not a restatement: a held-out example synthesised on `native`
    is voiced (pyworld) on most of the frames its features mark voiced. A model that
    plays shaped noise, as the first demo did, voices almost none of them."""
    from vocoder.features.f0 import _import_pyworld

    pyworld = _import_pyworld()
    feats, extras = load_features_file(EXAMPLES[0])
    feats = feats[:200]
    with Vocoder.load(DEMO, backend="native") as voc:
        audio = voc.synthesize(feats, speaker=int(extras["speaker"]), seed=0)
        vuv = feats[:, voc.feature_spec.names.index("vuv")] > 0.5
        sr, hop = voc.sample_rate, voc.hop_length
    f0, _ = pyworld.harvest(audio.astype(np.float64), sr, frame_period=1000 * hop / sr)
    voiced = f0[:len(vuv)] > 0
    assert vuv.mean() > 0.3  # the example has voiced speech to check
    assert voiced[vuv].mean() > 0.5
