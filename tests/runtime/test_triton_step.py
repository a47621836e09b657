"""The fused Triton step: the same kernel source runs in Triton's interpreter here (CPU
tensors, TRITON_INTERPRET=1 set by conftest) and compiled on a GPU, and is checked
against the torch step and the torch reference backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocoder.bundle import load_bundle, save_bundle
from vocoder.config import WaveNetConfig
from vocoder.errors import VocoderError
from vocoder.model import WaveNet
from vocoder.runtime import registry
from vocoder.runtime.noise import uniforms
from vocoder.runtime.torch_backend import TorchBackend
from vocoder.runtime.triton_backend import TritonBackend
from vocoder.runtime.triton_step import (
    MIN_DOT,
    TritonStep,
    interpreting,
    pack_weights,
    triton_status,
)

from .graph_emulator import emulate_graphs
from .loop_helpers import assert_matches_reference, make_config, random_cond, run_chunks

HAS_TRITON, WHY_NOT = triton_status()
HAS_CUDA = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not HAS_TRITON, reason=WHY_NOT)
# Where the kernel can run in this process: compiled on a GPU, else interpreted on the CPU.
DEVICE = torch.device("cuda" if HAS_CUDA and not interpreting() else "cpu")
runs_here = pytest.mark.skipif(DEVICE.type == "cpu" and not interpreting(),
                               reason="no GPU, and TRITON_INTERPRET was not set before "
                               "triton was imported")
needs_cuda = pytest.mark.skipif(DEVICE.type != "cuda", reason="needs a CUDA GPU (compiled "
                                "Triton kernels)")


#: Channels that are not powers of two (padding), fewer classes, period 4.
ODD = dict(residual_channels=12, gate_channels=20, skip_channels=24, layers=6,
           dilation_limit=4, quantization_channels=100)


def random_model(cfg: WaveNetConfig, seed: int = 0) -> WaveNet:
    torch.manual_seed(seed)
    model = WaveNet(cfg).eval()
    with torch.no_grad():  # non-zero biases everywhere so that each one is exercised
        for p in model.parameters():
            if p.ndim == 1:
                p.normal_(0, 0.2)
    return model


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    cfg = make_config()
    path = tmp_path_factory.mktemp("bundle")
    save_bundle(random_model(cfg), cfg, path)
    return load_bundle(path)


@pytest.fixture(scope="module")
def ref(bundle):
    return TorchBackend(bundle)


@pytest.fixture(scope="module")
def tri(bundle):
    return TritonBackend(bundle, device=str(DEVICE), graphs=False)


# -- packing ---------------------------------------------------------------------------------
def test_pack_weights_pads_with_zeros_and_keeps_the_products():
    cfg = make_config(**ODD)
    model = random_model(cfg)
    w = pack_weights(model, torch.float32)
    L, R, GH, S, A = cfg.layers, 12, 10, 24, 100
    assert w["emb"].shape == (A, 16) and w["wpf"].shape == (L, 16, 16)
    assert w["ws"].shape == (L, 16, 32) and w["w2"].shape == (32, 128)
    for k in ("emb", "wpf", "wpg", "wcf", "wcg", "ws", "wr", "br", "w1", "b1", "w2", "b2"):
        t = w[k]
        assert all(d >= MIN_DOT for d in t.shape[-1:]), k
    assert (w["emb"][:, R:] == 0).all() and (w["wpf"][:, R:] == 0).all()
    assert (w["wpf"][:, :, GH:] == 0).all() and (w["w2"][:, A:] == 0).all()
    assert (w["wr"][-1] == 0).all() and (w["br"][-1] == 0).all()  # last layer: no residual
    # tanh half of layer 2's tap at t - d, as the step computes it
    v = torch.randn(3, R)
    conv = model.dilated[2].weight
    assert torch.allclose(v @ w["wpf"][2, :R, :GH], v @ conv[:GH, :, 0].T, atol=1e-6)
    assert torch.allclose(v @ w["wcg"][2, :R, :GH], v @ conv[GH:, :, 1].T, atol=1e-6)
    assert torch.allclose(w["bs"][:S], sum(m.bias for m in model.skip), atol=1e-6)


# -- the plain step against the torch step -----------------------------------------------------
@runs_here
@pytest.mark.parametrize("overrides", [{}, ODD], ids=["pow2", "odd"])
@pytest.mark.parametrize("B", [1, 3, 17])  # 17: two programs, the second mostly masked
@pytest.mark.parametrize("dtype,bound", [(torch.float32, 1e-5), (torch.float16, 5e-3),
                                         (torch.bfloat16, 5e-2)])
def test_step_matches_torch_step(overrides, B, dtype, bound):
    cfg = make_config(**overrides)
    model = random_model(cfg, seed=B).to(DEVICE)
    gen = torch.Generator().manual_seed(B)
    x = torch.randint(0, cfg.quantization_channels, (B,), generator=gen)
    cond = torch.randn(B, cfg.layers, cfg.gate_channels, generator=gen)
    past = torch.randn(B, cfg.layers, cfg.residual_channels, generator=gen)
    with torch.no_grad():
        want_l, want_p = model.step(x.to(DEVICE), cond.to(DEVICE), past.to(DEVICE))
    step = TritonStep(model, dtype, DEVICE)
    logits, present = step(x.to(DEVICE), cond.to(DEVICE, dtype), past.to(DEVICE, dtype))
    assert logits.shape == (B, cfg.quantization_channels) and logits.dtype == torch.float32
    assert present.shape == (B, cfg.layers, cfg.residual_channels) and present.dtype == dtype
    scale = float(want_l.abs().max())
    assert float((logits - want_l).abs().max()) < bound * max(1.0, scale)
    assert float((present.float() - want_p).abs().max()) < bound * max(1.0, scale)


# -- the fused loop against the torch reference backend ----------------------------------------
@runs_here
@pytest.mark.parametrize("B,cuts", [(1, []), (3, [16, 37]), (2, [1, 2, 3, 20])])
def test_teacher_forced_logits_match_reference(bundle, ref, tri, B, cuts):
    cfg = bundle.config
    T = 50
    cond = random_cond(cfg, B, T)
    x = np.random.default_rng(2).integers(0, 256, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    state = tri.new_state(B)
    edges = [0, *cuts, T]
    got = np.concatenate([tri.teacher_force(cond[:, a:b], x[:, a:b], state)
                          for a, b in zip(edges[:-1], edges[1:])], axis=1)
    assert got.shape == (B, T, cfg.quantization_channels)
    assert np.abs(got - want).max() < 1e-4


@runs_here
@pytest.mark.parametrize("B,cuts", [(1, []), (4, [16, 33, 34])])
@pytest.mark.parametrize("temperature", [1.0, 0.7, 0.0])
def test_free_running_classes_match_reference(bundle, ref, tri, B, cuts, temperature):
    T = 60
    cond = random_cond(bundle.config, B, T, seed=3)
    u = uniforms(11, range(B), 0, T)
    want, s_ref = run_chunks(ref, cond, u, temperature, [])
    got, s_tri = run_chunks(tri, cond, u, temperature, cuts)
    assert got.dtype == np.int64 and (got == want).all()
    assert (s_tri.x == s_ref.x).all() and s_tri.t == s_ref.t == T
    # the ring was read and written in place by the kernel: the same state as the reference
    assert np.abs(s_tri.ring.cpu().numpy() - s_ref.ring).max() < 1e-5


@runs_here
def test_odd_sizes_through_the_loop(tmp_path):
    """Padded channels, 100 classes, period 4: teacher forcing and sampling."""
    cfg = make_config(**ODD)
    save_bundle(random_model(cfg, seed=5), cfg, tmp_path)
    b = load_bundle(tmp_path)
    tri = TritonBackend(b, device=str(DEVICE), graphs=False)
    got = assert_matches_reference(tri, TorchBackend(b), B=2, T=23, seed=6, cuts=[9])
    assert got.max() < 100


@runs_here
@pytest.mark.parametrize("precision,bound", [("fp16", 2e-2), ("bf16", 1e-1)])
def test_half_precisions(bundle, ref, precision, bound):
    tri = TritonBackend(bundle, device=str(DEVICE), precision=precision, graphs=False)
    B, T = 2, 40
    cond = random_cond(bundle.config, B, T, seed=8)
    x = np.random.default_rng(8).integers(0, 256, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    got = tri.teacher_force(cond, x, tri.new_state(B))
    assert 0 < np.abs(got - want).max() < bound  # rounded, but close


@runs_here
def test_one_launch_per_step(bundle, tri, monkeypatch):
    """The loop calls the fused step once per step and never the plain four-call path."""
    calls = []
    real = tri.executor.fused_step
    monkeypatch.setattr(tri.executor, "fused_step", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(tri.executor, "__call__", None)
    cond = random_cond(bundle.config, 2, 21)
    tri.generate(cond, tri.new_state(2), uniforms(0, range(2), 0, 21), 1.0)
    assert len(calls) == 21


@runs_here
def test_graph_replay_equals_reference_with_emulated_graphs(bundle, ref, monkeypatch):
    """Captured periods (emulated: launches and ops recorded once with their tensors and
    replayed on the same memory) across phases, a temperature change and greedy mode."""
    tri = TritonBackend(bundle, device=str(DEVICE), graphs=False)
    emulate_graphs(monkeypatch, tri.loop, launchers=[(tri.executor, "fused_step")])
    B, T = 3, 75
    cond = random_cond(bundle.config, B, T, seed=12)
    u = uniforms(5, range(B), 0, T)
    state, s_ref = tri.new_state(B), ref.new_state(B)
    for a, b, temp in [(0, 5, 1.0), (5, 40, 0.8), (40, 75, 0.0)]:
        got = tri.generate(cond[:, a:b], state, u[:, a:b], temp)
        assert (got == ref.generate(cond[:, a:b], s_ref, u[:, a:b], temp)).all()
    assert np.abs(state.ring.cpu().numpy() - s_ref.ring).max() < 1e-5
    graphs = {mode: g for (mode, _), g in tri.loop.buffers(B).graphs.items()}
    assert graphs["sample"].replays == 2 and graphs["greedy"].replays == 2


# -- errors ----------------------------------------------------------------------------------
def test_clear_errors(bundle, monkeypatch):
    with pytest.raises(VocoderError, match="block_batch"):
        TritonBackend(bundle, device="cpu", block_batch=24)
    with pytest.raises(VocoderError, match="precision"):
        TritonBackend(bundle, device="cpu", precision="int8")
    big = make_config(quantization_channels=4096)
    with pytest.raises(VocoderError, match="at most 1024 classes"):
        TritonStep(WaveNet(big), torch.float32, torch.device("cpu"))
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(VocoderError, match="TRITON_INTERPRET=1"):
        TritonStep(WaveNet(make_config()), torch.float32, torch.device("cpu"))


def test_registry_knows_triton():
    ok, why = registry.probe("triton")
    assert ok == (HAS_CUDA and HAS_TRITON)
    if not HAS_CUDA:
        assert "GPU" in why or "CUDA" in why


# -- on a GPU ----------------------------------------------------------------------------------
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_graph_replay_equals_eager(bundle, precision):
    graph = TritonBackend(bundle, precision=precision, graphs=True)
    eager = TritonBackend(bundle, precision=precision, graphs=False)
    B, T = 20, 16 * 5 + 9  # 20: two programs
    cond = random_cond(bundle.config, B, T, seed=15)
    u = uniforms(19, range(B), 0, T)
    a, sa = run_chunks(graph, cond, u, 1.0, [40])
    b, sb = run_chunks(eager, cond, u, 1.0, [40])
    assert (a == b).all()
    assert torch.equal(sa.ring, sb.ring)  # the same kernel on the same data
    assert graph.loop.captures == 1


@needs_cuda
def test_compiled_matches_reference_at_default_sizes(tmp_path):
    """The default model's channel sizes (the tile shapes the benchmark compiles)."""
    cfg = make_config(residual_channels=64, gate_channels=128, skip_channels=128)
    save_bundle(random_model(cfg), cfg, tmp_path)
    b = load_bundle(tmp_path)
    tri = TritonBackend(b, precision="fp32")
    assert_matches_reference(tri, TorchBackend(b), B=3, T=50, seed=9, cuts=[20])
