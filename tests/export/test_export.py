"""The exported graphs: op set, checker, parity with torch, chunked conditioning, staleness."""

import numpy as np
import onnx
import pytest
import torch

from tests.conftest import make_bundle, make_config
from vocoder.bundle import save_bundle
from vocoder.errors import VocoderError
from vocoder.export.exporter import RETIRED, export_bundle
from vocoder.export.graphs import ALLOWED_OPS
from vocoder.model import WaveNet

CONFIGS = [
    make_config(),
    make_config(cond_channels=5, n_speakers=3, gc_channels=2),
    make_config(cond_channels=4, upsample_scales=(4, 4, 5), layers=2, stacks=1),
    make_config(cond_channels=4, cond_hidden=0, layers=2, stacks=1),
    make_config(n_speakers=2, layers=1, stacks=1),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_export_checks_and_matches_torch(tmp_path, cfg):
    make_bundle(tmp_path, cfg, export=False)
    rep = export_bundle(tmp_path)
    assert set(rep.max_abs_diff) == {"condition.onnx", "step.onnx"}
    assert max(rep.max_abs_diff.values()) < 1e-4
    for name in rep.files:
        model = onnx.load(str(tmp_path / name))
        onnx.checker.check_model(model)
        ops = {n.op_type for n in model.graph.node}
        assert ops <= ALLOWED_OPS, ops - ALLOWED_OPS
    step = onnx.load(str(tmp_path / "step.onnx"))
    assert [i.name for i in step.graph.input] == ["x", "cond_t", "past"]
    assert [o.name for o in step.graph.output] == ["logits", "present"]


def test_step_graph_is_lean():
    # the default config's step graph: ~8 nodes a layer (each node costs a fixed overhead
    # per step on ONNX Runtime, so the node count is speed)
    from vocoder.bundle import Bundle
    from vocoder.config import WaveNetConfig
    from vocoder.export.exporter import build_graphs

    cfg = WaveNetConfig()
    weights = {k: v.numpy() for k, v in WaveNet(cfg).state_dict().items()}
    graphs = build_graphs(Bundle(None, cfg, None, weights, "x"))
    assert len(graphs["step.onnx"].graph.node) <= 9 * cfg.layers


def test_chunked_condition_equals_whole_exactly(tmp_path):
    cfg = make_config(cond_channels=5, n_speakers=3, upsample_scales=(4, 4, 5))
    make_bundle(tmp_path, cfg)
    from vocoder.bundle import load_bundle
    from vocoder.runtime.conditioning import Conditioner
    from vocoder.runtime.ort_backend import OrtBackend

    backend = OrtBackend(load_bundle(tmp_path))
    feats = np.random.default_rng(0).standard_normal((57, 5)).astype(np.float32)
    n = 57 * cfg.hop_length
    whole = backend.condition(feats[None], np.array([2]), None, 0, n, 1)[0]
    cond = Conditioner(backend.config, feats, 2, None, n)
    for chunk in (1, 37, 80, 333, 1000):
        parts = np.concatenate([cond.compute(backend, s, min(s + chunk, n))
                                for s in range(0, n, chunk)])
        assert np.array_equal(parts, whole), chunk
    # and the whole-utterance ONNX conditioning equals torch's
    model = WaveNet(cfg)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in
                           load_bundle(tmp_path).weights.items()})
    with torch.no_grad():
        ref = model.condition(torch.from_numpy(feats)[None], torch.tensor([2]))[0].numpy()
    assert np.abs(ref - whole).max() < 1e-5


def test_export_writes_the_two_graphs_and_removes_retired_ones(tmp_path):
    cfg = make_config()
    make_bundle(tmp_path, cfg, export=False)
    (tmp_path / RETIRED[0]).write_bytes(b"left by an older export")
    rep = export_bundle(tmp_path)
    assert sorted(p.name for p in tmp_path.glob("*.onnx")) == ["condition.onnx", "step.onnx"]
    assert set(rep.files) == {"condition.onnx", "step.onnx"}


def test_export_refuses_bad_batches(tmp_path):
    make_bundle(tmp_path, make_config(), export=False)
    with pytest.raises(VocoderError, match="exactly one batch"):
        export_bundle(tmp_path, batches=(1, 8), static=True)


def test_static_export_fixes_batch(tmp_path):
    make_bundle(tmp_path, make_config(), export=False)
    export_bundle(tmp_path, batches=(4,), static=True)
    dim = onnx.load(str(tmp_path / "step.onnx")).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_value == 4


def test_stale_onnx_detected(tmp_path):
    from vocoder.api import Vocoder

    cfg = make_config()
    make_bundle(tmp_path, cfg)
    torch.manual_seed(5)
    save_bundle(WaveNet(cfg), cfg, tmp_path)  # new weights, old ONNX files
    with pytest.raises(VocoderError, match="stale"):
        Vocoder.load(tmp_path)


def test_missing_onnx_says_how_to_export(tmp_path):
    from vocoder.api import Vocoder

    make_bundle(tmp_path, make_config(), export=False)
    with pytest.raises(VocoderError, match="vocoder export"):
        Vocoder.load(tmp_path)


CONTEXT_CFG = make_config(cond_channels=3, n_speakers=2, context_pool=8, context_channels=6,
                          context_layers=4, context_dilation_limit=4)


def test_context_step_graph_equals_torch(tmp_path):
    """context_step.onnx: written only for context models, checked by the export, and
    equal to torch's context_step over a run of blocks from the zero state."""
    import onnxruntime as ort

    from vocoder.bundle import load_bundle

    model = make_bundle(tmp_path, CONTEXT_CFG, export=False)
    rep = export_bundle(tmp_path)
    assert set(rep.max_abs_diff) == {"condition.onnx", "step.onnx", "context_step.onnx"}
    assert rep.max_abs_diff["context_step.onnx"] < 1e-4
    graph = onnx.load(str(tmp_path / "context_step.onnx"))
    onnx.checker.check_model(graph)
    assert {n.op_type for n in graph.graph.node} <= ALLOWED_OPS
    assert [i.name for i in graph.graph.input] == ["block", "state"]
    assert [o.name for o in graph.graph.output] == ["bias", "new_state"]
    assert load_bundle(tmp_path).exported()["context_step.onnx"].is_file()
    sess = ort.InferenceSession(str(tmp_path / "context_step.onnx"),
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    model.eval()
    state = model.init_context_state(3)
    onnx_state = state.numpy()
    for k in range(7):  # the registers shift through several blocks
        block = rng.integers(0, 256, (3, 8))
        with torch.no_grad():
            bias, state = model.context_step(torch.from_numpy(block), state)
        got, onnx_state = sess.run(["bias", "new_state"],
                                   {"block": block, "state": onnx_state})
        assert np.abs(got - bias.numpy()).max() < 1e-4, k
        assert np.abs(onnx_state - state.numpy()).max() < 1e-4, k


def test_a_context_bundle_needs_its_context_graph(tmp_path):
    from vocoder.api import Vocoder

    make_bundle(tmp_path, CONTEXT_CFG)
    (tmp_path / "context_step.onnx").unlink()
    for backend in ("onnxruntime", "native"):
        with pytest.raises(VocoderError, match="no context_step.onnx.*vocoder export"):
            Vocoder.load(tmp_path, backend=backend)
    export_bundle(tmp_path)
    other = tmp_path / "other"
    make_bundle(other, CONTEXT_CFG, seed=5)  # a context graph of other weights
    (tmp_path / "context_step.onnx").write_bytes((other / "context_step.onnx").read_bytes())
    for backend in ("onnxruntime", "native"):
        with pytest.raises(VocoderError, match="context_step.onnx is stale"):
            Vocoder.load(tmp_path, backend=backend)
    cfg = make_config()
    # a model without a context stack: a left-over context graph is removed on export
    save_bundle(WaveNet(cfg), cfg, tmp_path)
    export_bundle(tmp_path)
    assert not (tmp_path / "context_step.onnx").exists()
