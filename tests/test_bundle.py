"""Bundle round trip and every corrupt-bundle case."""

import json

import numpy as np
import pytest
import torch

from tests.conftest import make_bundle, make_config
from vocoder.bundle import load_bundle, save_bundle
from vocoder.errors import VocoderError
from vocoder.features.spec import FeatureSpec
from vocoder.model import WaveNet


@pytest.fixture
def bundle(tmp_path):
    cfg = make_config(cond_channels=4, n_speakers=2)
    path = tmp_path / "b"
    model = make_bundle(path, cfg, export=False)
    return path, model, cfg


def test_round_trip_same_logits(bundle):
    path, model, cfg = bundle
    b = load_bundle(path)
    assert b.config == cfg
    again = b.build_model()
    x = torch.randint(0, 256, (1, 60))
    f = torch.randn(1, 10, 4)
    s = torch.tensor([1])
    with torch.no_grad():
        assert torch.equal(model.eval()(x, f, s), again(x, f, s))


def test_feature_spec_round_trip(tmp_path):
    cfg = make_config(cond_channels=3)
    spec = FeatureSpec(("a", "b", "vuv"), cfg.hop_length, (1.0, 2.0, 0.0), (0.5, 3.0, 1.0),
                       (False, False, True))
    save_bundle(WaveNet(cfg), cfg, tmp_path, feature_spec=spec)
    assert load_bundle(tmp_path).feature_spec == spec
    raw = np.array([[2.0, 5.0, 1.0]])
    assert np.allclose(spec.normalize(raw), [[2.0, 1.0, 1.0]])


def test_feature_spec_must_match_config(tmp_path):
    cfg = make_config(cond_channels=3)
    with pytest.raises(VocoderError, match="cond_channels=3"):
        save_bundle(WaveNet(cfg), cfg, tmp_path, feature_spec=FeatureSpec.identity(4, 6))


def _edit_config(path, fn):
    doc = json.loads((path / "config.json").read_text())
    fn(doc)
    (path / "config.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("corrupt, msg", [
    (lambda p: (p / "config.json").unlink(), "config.json: missing"),
    (lambda p: (p / "model.safetensors").unlink(), "model.safetensors: missing"),
    (lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda p: (p / "config.json").write_text("[]"), "not a vocoder bundle"),
    (lambda p: _edit_config(p, lambda d: d.update(format_version=99)), "newer than"),
    (lambda p: _edit_config(p, lambda d: d["model"].update(residual_channels=9)),
     "has shape"),
    (lambda p: _edit_config(p, lambda d: d["model"].update(layers=7)), "multiple of stacks"),
    (lambda p: _edit_config(p, lambda d: d.pop("weights")), "missing the 'weights'"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\0" * 10), "safetensors"),
    (lambda p: (p / "model.safetensors").write_bytes(
        (p / "model.safetensors").read_bytes()[:-16]), "safetensors|sha256"),
])
def test_corrupt_bundles_give_clear_errors(bundle, corrupt, msg):
    path = bundle[0]
    corrupt(path)
    with pytest.raises(VocoderError, match=msg):
        load_bundle(path)


def test_changed_weights_detected_by_hash(bundle, tmp_path):
    path, _, cfg = bundle
    other = tmp_path / "other"
    torch.manual_seed(99)
    save_bundle(WaveNet(cfg), cfg, other)
    (path / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(VocoderError, match="sha256"):
        load_bundle(path)


def test_not_a_directory(tmp_path):
    with pytest.raises(VocoderError, match="not a bundle directory"):
        load_bundle(tmp_path / "nope")


def test_save_is_atomic_on_failure(bundle, monkeypatch):
    path, model, cfg = bundle
    before = (path / "model.safetensors").read_bytes()
    import safetensors.torch

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", boom)
    with pytest.raises(OSError):
        save_bundle(WaveNet(cfg), cfg, path)
    assert (path / "model.safetensors").read_bytes() == before
    assert not [p for p in path.iterdir() if p.name.startswith(".")]


def test_an_older_bundle_without_context_fields_loads(bundle):
    path, _, cfg = bundle
    doc = json.loads((path / "config.json").read_text())
    for key in [k for k in doc["model"] if k.startswith("context_")]:
        del doc["model"][key]
    (path / "config.json").write_text(json.dumps(doc))
    b = load_bundle(path)
    assert b.config == cfg and b.config.context_pool == 0
    with pytest.raises(VocoderError, match="no context stack"):
        b.exported("context_step.onnx")


def test_context_stack_round_trip_same_logits(tmp_path):
    cfg = make_config(context_pool=6, context_channels=5, context_layers=2)
    model = make_bundle(tmp_path / "b", cfg, export=False)
    b = load_bundle(tmp_path / "b")
    assert b.config == cfg
    assert b.weights["context.embed.weight"].shape == (5, 6)
    x = torch.randint(0, 256, (1, 50))
    with torch.no_grad():
        assert torch.equal(model.eval()(x), b.build_model()(x))
    with pytest.raises(VocoderError, match="no condition.onnx / step.onnx / "
                                           "context_step.onnx"):
        b.exported()
    # a tensor missing from the weights is named
    w = dict(b.weights)
    del w["context.proj.weight"]
    from safetensors.numpy import save_file

    save_file(w, str(tmp_path / "b" / "model.safetensors"))
    doc = json.loads((tmp_path / "b" / "config.json").read_text())
    doc["weights"]["sha256"] = None
    (tmp_path / "b" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(VocoderError, match="context.proj.weight"):
        load_bundle(tmp_path / "b")
