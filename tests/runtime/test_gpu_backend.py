"""The GPU runtime: the device-resident loop runs on the CPU device here (eager), and is
checked against the torch reference backend; CUDA and TensorRT tests skip without them."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch

from vocoder.bundle import load_bundle, save_bundle
from vocoder.errors import VocoderError
from vocoder.fileio import sha256_file
from vocoder.model import WaveNet
from vocoder.runtime import engine, gpu_loop, registry, trt_engine
from vocoder.runtime.conditioning import Conditioner
from vocoder.runtime.cuda_backend import CudaBackend
from vocoder.runtime.cuda_common import cuda_status
from vocoder.runtime.gpu_loop import PeriodLoop, sample_torch, segments
from vocoder.runtime.noise import uniforms
from vocoder.runtime.ring import RingLayout
from vocoder.runtime.sampling import sample
from vocoder.runtime.tensorrt_backend import TensorRTBackend
from vocoder.runtime.torch_backend import TorchBackend

from .graph_emulator import EmulatedGraph, HostSyncInCapture, emulate_graphs
from .loop_helpers import make_config, random_cond, run_chunks

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU visible to torch "
                                "(this torch build or machine has none)")
HAS_TRT = trt_engine.tensorrt_status()[0]
needs_trt = pytest.mark.skipif(not (HAS_CUDA and HAS_TRT),
                               reason="needs a CUDA GPU and the tensorrt package (>= 10)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    torch.manual_seed(0)
    cfg = make_config()
    path = tmp_path_factory.mktemp("bundle")
    save_bundle(WaveNet(cfg), cfg, path)
    return load_bundle(path)


@pytest.fixture(scope="module")
def ref(bundle):
    return TorchBackend(bundle)


@pytest.fixture(scope="module")
def cpu(bundle):
    return CudaBackend(bundle, device="cpu")


# -- pure pieces ----------------------------------------------------------------------------
def test_the_loop_rotates_its_slot_table_to_the_ring_layout(cpu):
    # Step i of a period starting at step t reads idx[i]: it must be the layout's row t + i.
    layout, loop = cpu.layout, cpu.loop
    P = layout.period
    assert P == 16
    buf = loop.buffers(1)
    for t in (0, 1, 7, P - 1, P + 3):
        loop._set_phase(buf, t)
        for i in range(P):
            assert (buf.idx[i].numpy() == layout.row(t + i)).all()


@pytest.mark.parametrize("n,period,expected", [
    (0, 4, []), (3, 4, [(0, 3)]), (4, 4, [(0, 4)]), (9, 4, [(0, 4), (4, 4), (8, 1)]),
])
def test_segments(n, period, expected):
    assert segments(n, period) == expected


@pytest.mark.parametrize("temperature", [1.0, 0.7, 1.3])
def test_sample_torch_equals_reference_sampling(temperature):
    rng = np.random.default_rng(1)
    logits = (rng.standard_normal((4000, 256)) * 3).astype(np.float32)
    u = uniforms(7, [0], 0, 4000)[0]
    got = sample_torch(torch.from_numpy(logits), torch.from_numpy(u),
                       torch.tensor(1.0 / temperature, dtype=torch.float64)).numpy()
    assert got.dtype == np.int64
    assert (got == sample(logits, u, temperature)).all()


def test_sample_torch_extremes():
    # u near 0 and 1, and a one-hot distribution: always within [0, A-1]
    logits = torch.full((3, 256), -1e4)
    logits[:, 17] = 0.0
    u = torch.tensor([1e-7, 0.5, 1 - 1e-7])
    k = sample_torch(logits, u, torch.tensor(1.0, dtype=torch.float64))
    assert k.tolist() == [17, 17, 17]


# -- parity with the torch reference on the CPU device ---------------------------------------
@pytest.mark.parametrize("B,cuts", [(1, []), (2, [5]), (3, [16, 37]), (2, [1, 2, 3, 20])])
def test_teacher_forced_logits_match_reference(bundle, ref, cpu, B, cuts):
    cfg = bundle.config
    T = 50  # 3 periods + 2: chunks cross period boundaries at odd phases
    cond = random_cond(cfg, B, T)
    x = np.random.default_rng(2).integers(0, 256, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    state = cpu.new_state(B)
    edges = [0, *cuts, T]
    got = np.concatenate([cpu.teacher_force(cond[:, a:b], x[:, a:b], state)
                          for a, b in zip(edges[:-1], edges[1:])], axis=1)
    assert got.shape == (B, T, cfg.quantization_channels) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-4
    assert state.t == T


@pytest.mark.parametrize("B,cuts", [(1, []), (2, [7]), (4, [16, 33, 34])])
@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_free_running_classes_match_reference(bundle, ref, cpu, B, cuts, temperature):
    T = 60
    cond = random_cond(bundle.config, B, T, seed=3)
    u = uniforms(11, range(B), 0, T)
    want, s_ref = run_chunks(ref, cond, u, temperature, [])
    got, s_cpu = run_chunks(cpu, cond, u, temperature, cuts)
    assert got.dtype == np.int64 and got.shape == (B, T)
    assert (got == want).all()
    assert (s_cpu.x == s_ref.x).all() and s_cpu.t == s_ref.t == T
    assert np.abs(s_cpu.ring.numpy() - s_ref.ring).max() < 1e-6


def test_per_sample_temperatures_are_refused_clearly(bundle, cpu):
    cond = random_cond(bundle.config, 1, 8, seed=3)
    state = cpu.new_state(1)
    with pytest.raises(VocoderError, match="per-sample temperatures"):
        cpu.generate(cond, state, uniforms(1, [0], 0, 8), np.full((1, 8), 0.7))


def test_engine_chunks_not_multiple_of_period(bundle, ref, cpu):
    """Through the chunking engine (as synthesis drives it), chunk 13 vs D_max 16."""
    cfg = bundle.config
    feats = np.random.default_rng(4).standard_normal((20, cfg.cond_channels)).astype(
        np.float32)
    n = 20 * cfg.hop_length

    def classes(backend, chunk):
        jobs = [engine.Job(Conditioner(backend.config, feats, None, None, n), s, 0, n)
                for s in range(2)]
        return np.concatenate([c for _, c in engine.generate(backend, jobs, seed=5,
                                                             temperature=1.0, chunk=chunk)], 1)

    assert (classes(cpu, 13) == classes(ref, n)).all()


def test_synthesize_folded_and_streamed_match_reference(bundle, ref, cpu):
    """The public API on the cuda backend's loop (CPU device): folded segments run as a
    batch, streaming runs chunk by chunk; both equal the reference backend's audio."""
    from vocoder.api import Vocoder
    from vocoder.runtime.folding import FoldSettings

    feats = np.random.default_rng(21).standard_normal((30, 3)).astype(np.float32)
    fold = FoldSettings(segments=4, min_segment=20, overlap=12, crossfade=4)
    a = Vocoder(cpu).synthesize(feats, seed=3, fold=True, fold_settings=fold)
    b = Vocoder(ref).synthesize(feats, seed=3, fold=True, fold_settings=fold)
    assert a.shape == (120,) and (a == b).all()
    chunks = list(Vocoder(cpu).stream(feats, seed=3, chunk=16))
    assert len(chunks) == 8
    assert (np.concatenate(chunks) == Vocoder(ref).synthesize(feats, seed=3, fold=False)).all()


def test_streams_whole_periods_by_default(bundle, ref, cpu):
    """GPU backends stream one D_max period per chunk (whole graph replays); the CPU
    backends 50 ms."""
    from vocoder.api import Vocoder

    feats = np.random.default_rng(22).standard_normal((30, 3)).astype(np.float32)
    chunks = list(Vocoder(cpu).stream(feats, seed=3))
    assert [len(c) for c in chunks] == [16] * 7 + [8]  # 120 samples, period 16
    assert (np.concatenate(chunks) == Vocoder(ref).synthesize(feats, seed=3, fold=False)).all()
    assert ref.stream_chunk() == bundle.config.sample_rate // 20


def test_conditioning_stays_in_device_memory(bundle, ref, cpu, monkeypatch):
    """The engine's conditioning buffer is the backend's tensor, written in place by
    condition_into (no host array in between), and generate receives that tensor."""
    from vocoder.runtime.conditioning import condition_batch

    cfg = bundle.config
    feats = np.random.default_rng(8).standard_normal((20, cfg.cond_channels)).astype(
        np.float32)
    n = 20 * cfg.hop_length
    seen = []
    gen = cpu.generate
    monkeypatch.setattr(cpu, "generate", lambda c, *a: seen.append(type(c)) or gen(c, *a))
    # three jobs: an utterance start (its own group), two interior ones (one in-place call)
    jobs = [engine.Job(Conditioner(cpu.config, feats, None, None, n), s, start, 24)
            for s, start in enumerate((0, 40, 60))]
    got = np.concatenate([c for _, c in engine.generate(cpu, jobs, seed=2, temperature=1.0,
                                                        chunk=10)], 1)
    assert seen and all(t is torch.Tensor for t in seen)
    want_jobs = [engine.Job(Conditioner(ref.config, feats, None, None, n), j.stream, j.start, 24)
                 for j in jobs]
    want = np.concatenate([c for _, c in engine.generate(ref, want_jobs, seed=2,
                                                         temperature=1.0, chunk=24)], 1)
    assert (got == want).all()
    buf = cpu.cond_buffer(3, 10)
    assert isinstance(buf, torch.Tensor) and buf.device == cpu.device
    out = condition_batch(cpu, [(j.cond, j.start, j.start + 10) for j in jobs], buf)
    assert out is buf
    ref_out = condition_batch(ref, [(j.cond, j.start, j.start + 10) for j in want_jobs])
    assert np.abs(buf.numpy() - ref_out).max() < 1e-6


def test_condition_matches_reference(bundle, ref, cpu):
    feats = np.random.default_rng(6).standard_normal((1, 9, 3)).astype(np.float32)
    a = ref.condition(feats, None, None, 5, 30, 2)
    b = cpu.condition(feats, None, None, 5, 30, 2)
    assert b.shape == (2, 25, 10, 16) and np.abs(a - b).max() < 1e-6


def test_graph_replay_on_cpu_equals_reference(bundle, ref, monkeypatch):
    """The graph path with emulated graphs (tests/runtime/graph_emulator.py: ops recorded
    once with their tensors, replayed on the same memory, host syncs refused): static
    buffers, phase rotation, full periods replayed, eager tails, and a temperature change
    between chunks that the captured period must pick up from its buffer."""
    backend = CudaBackend(bundle, device="cpu")
    loop = backend.loop
    emulate_graphs(monkeypatch, loop)
    B, T = 2, 75
    cond = random_cond(bundle.config, B, T, seed=8)
    u = uniforms(3, [0, 1], 0, T)
    state, s_ref = backend.new_state(B), ref.new_state(B)
    for a, b, temp in [(0, 3, 1.0), (3, 40, 0.7), (40, 75, 1.0)]:  # phases 0, 3, 8 (mod 16)
        got = backend.generate(cond[:, a:b], state, u[:, a:b], temp)
        assert (got == ref.generate(cond[:, a:b], s_ref, u[:, a:b], temp)).all()
    assert np.abs(state.ring.numpy() - s_ref.ring).max() < 1e-6
    (graph,) = loop.buffers(B).graphs.values()
    assert graph.replays == 4 and loop.captures == 1  # chunks 3, 37, 35: 0 + 2 + 2 periods
    g, g_ref = backend.generate(cond, backend.new_state(B), u, 0.0), \
        ref.generate(cond, ref.new_state(B), u, 0.0)
    assert (g == g_ref).all()  # greedy: its own captured period
    x = np.random.default_rng(9).integers(0, 256, (B, T))
    lg = backend.teacher_force(cond, x, backend.new_state(B))
    assert np.abs(lg - ref.teacher_force(cond, x, ref.new_state(B))).max() < 1e-4
    assert loop.captures == 3
    # A graph reads the ring it was captured on: another ring gets its own capture (and
    # the right result), the same ring again none.
    other = backend.new_state(B)
    assert other.ring.data_ptr() != state.ring.data_ptr()
    got = backend.generate(cond, other, u, 1.0)
    assert (got == ref.generate(cond, ref.new_state(B), u, 1.0)).all()
    assert loop.captures == 4
    backend.generate(cond[:, :16], state, u[:, :16], 1.0)
    assert loop.captures == 4


def test_graph_emulator_refuses_host_syncs_and_freezes_python_values():
    """The emulator itself: a capture that reads a value on the host fails, and a Python
    number read at capture stays what it was, as in a real graph."""
    a = torch.ones(3)
    with pytest.raises(HostSyncInCapture):
        EmulatedGraph().capture(lambda: a.sum().item())
    scale = [2.0]
    out = torch.zeros(3)
    g = EmulatedGraph()
    g.capture(lambda: torch.mul(a, scale[0], out=out))
    scale[0], a[:] = 5.0, 3.0
    g.replay()
    assert out.tolist() == [6.0, 6.0, 6.0]  # new data in the same memory, the old scalar


@pytest.mark.parametrize("precision,bound", [("bf16", 5e-2), ("fp16", 1e-2)])
def test_half_precisions_on_cpu(bundle, cpu, precision, bound):
    """Reduced-precision plumbing (weights, rings, conditioning in the step's dtype).
    Bound: max abs logit error vs fp32 on this tiny random model (logits ~ +-1); measured
    on the CPU: fp16 9e-4, bf16 7e-3."""
    half = CudaBackend(bundle, device="cpu", precision=precision)
    B, T = 2, 40
    cond = random_cond(bundle.config, B, T, seed=10)
    x = np.random.default_rng(10).integers(0, 256, (B, T))
    want = cpu.teacher_force(cond, x, cpu.new_state(B))
    state = half.new_state(B)
    got = half.teacher_force(cond, x, state)
    assert state.ring.dtype == {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < bound


# -- errors and availability -----------------------------------------------------------------
def test_bad_options(bundle):
    with pytest.raises(VocoderError, match="precision"):
        CudaBackend(bundle, device="cpu", precision="fp8")
    with pytest.raises(VocoderError, match="CUDA graphs"):
        CudaBackend(bundle, device="cpu", graphs=True)
    with pytest.raises(VocoderError, match="device"):
        CudaBackend(bundle, device="tpu")
    with pytest.raises(ValueError, match="graphs need a CUDA"):
        PeriodLoop(None, np.zeros((4, 2), np.int64), 8, 2, 4, 256, torch.device("cpu"),
                   graphs=True)


def test_bad_shapes(bundle, cpu):
    state = cpu.new_state(2)
    with pytest.raises(ValueError, match="cond must be"):
        cpu.generate(np.zeros((2, 5, 3, 16), np.float32), state, np.zeros((2, 5)), 1.0)
    with pytest.raises(ValueError, match="u must be"):
        cpu.generate(random_cond(bundle.config, 2, 5), state, np.zeros((2, 4)), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        cpu.generate(random_cond(bundle.config, 2, 5), state, np.zeros((2, 5)), -1.0)
    assert cpu.generate(random_cond(bundle.config, 2, 0), state, np.zeros((2, 0)),
                        1.0).shape == (2, 0)


@pytest.mark.skipif(HAS_CUDA, reason="checks the error shown when no GPU is visible")
def test_clear_errors_without_cuda(bundle):
    ok, why = CudaBackend.available()
    assert not ok and ("CPU-only" in why or "no CUDA GPU" in why)
    assert cuda_status() == (ok, why)
    ok, why_trt = TensorRTBackend.available()
    assert not ok and why_trt.startswith(why)
    assert HAS_TRT or why_trt.endswith("TensorRT is not installed either")
    with pytest.raises(VocoderError, match="CPU-only|no CUDA GPU"):
        CudaBackend(bundle)
    with pytest.raises(VocoderError, match="not available"):
        registry.create("cuda", bundle)
    assert registry.probe("cuda") == (False, why)


def test_clear_error_without_tensorrt(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(VocoderError, match="TensorRT is not installed.*pip install tensorrt"):
        trt_engine.require_tensorrt()
    ok, why = trt_engine.tensorrt_status()
    assert not ok and "TensorRT is not installed" in why
    with pytest.raises(VocoderError, match="TensorRT is not installed"):
        TensorRTBackend(bundle)
    if HAS_CUDA:
        assert TensorRTBackend.available() == (False, why)


def test_old_tensorrt_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))
    with pytest.raises(VocoderError, match="too old"):
        trt_engine.require_tensorrt()


# -- TensorRT engine cache and the fp16 graph (no TensorRT needed) -----------------------------
SHA = "ab" * 32


def test_engine_key_names_everything():
    key = trt_engine.engine_key(SHA, "10.9.0.34", "NVIDIA H100 80GB HBM3", "fp16", 8)
    assert key == "step-abababababababab-trt10.9.0.34-nvidia-h100-80gb-hbm3-fp16-b8"
    variants = [trt_engine.engine_key("cd" * 32, "10.9.0.34", "NVIDIA H100 80GB HBM3", "fp16", 8),
                trt_engine.engine_key(SHA, "11.0.0", "NVIDIA H100 80GB HBM3", "fp16", 8),
                trt_engine.engine_key(SHA, "10.9.0.34", "NVIDIA H200", "fp16", 8),
                trt_engine.engine_key(SHA, "10.9.0.34", "NVIDIA H100 80GB HBM3", "fp32", 8),
                trt_engine.engine_key(SHA, "10.9.0.34", "NVIDIA H100 80GB HBM3", "fp16", 16)]
    assert len({key, *variants}) == 6
    assert all("/" not in k and " " not in k for k in variants)


@pytest.mark.parametrize("args,match", [
    ((SHA, "10.0", "gpu", "int8", 1), "precision"),
    ((SHA, "10.0", "gpu", "fp16", 0), "batch"),
    ((SHA, "10.0", "gpu", "fp16", True), "batch"),
    (("not-a-hash", "10.0", "gpu", "fp16", 1), "hex"),
])
def test_engine_key_rejects_bad_fields(args, match):
    with pytest.raises(VocoderError, match=match):
        trt_engine.engine_key(*args)


class _FakeTrt(types.SimpleNamespace):
    """Enough of ``tensorrt`` to construct the executor; building must not happen."""

    __version__ = "10.9.0"

    class Logger:
        WARNING = 2

        def __init__(self, level):
            self.level = level

    @staticmethod
    def Builder(logger):  # noqa: N802 - TensorRT's name
        raise AssertionError("a cached engine must not be rebuilt")


def test_engine_cache_path_and_hit(bundle, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", _FakeTrt())
    onnx_path = tmp_path / "step.onnx"
    onnx_path.write_bytes(b"graph bytes")
    step = trt_engine.TensorRTStep(onnx_path, tmp_path / "engines", "fp16", 10, 8, 16, 256,
                                   torch.device("cpu"), gpu_name="NVIDIA H100 80GB HBM3")
    path = step.engine_path(4)
    sha = sha256_file(onnx_path)
    assert path == tmp_path / "engines" / (
        f"step-{sha[:16]}-trt10.9.0-nvidia-h100-80gb-hbm3-fp16-b4.engine")
    assert step.shapes(4) == {"x": (4,), "cond_t": (4, 10, 16), "past": (4, 10, 8)}
    path.parent.mkdir()
    path.write_bytes(b"engine")
    assert step.build(4) == path  # cache hit: the fake Builder would raise
    with pytest.raises(VocoderError, match="precision|runs fp32 or fp16"):
        trt_engine.TensorRTStep(onnx_path, tmp_path, "bf16", 10, 8, 16, 256,
                                torch.device("cpu"), gpu_name="x")


def test_onnx_fp16_keeps_float32_io_and_computes_close(bundle):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from vocoder.bundle import STEP_ONNX
    from vocoder.export.exporter import build_graphs

    model = build_graphs(bundle)[STEP_ONNX]
    half = trt_engine.onnx_fp16(model)
    onnx.checker.check_model(half)
    F = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in half.graph.input][1:] == [F, F]
    assert all(o.type.tensor_type.elem_type == F for o in half.graph.output)
    assert all(i.data_type != F for i in half.graph.initializer)
    cfg, B = bundle.config, 3
    rng = np.random.default_rng(12)
    feed = {"x": rng.integers(0, 256, B).astype(np.int64),
            "cond_t": rng.standard_normal((B, cfg.layers, cfg.gate_channels), np.float32),
            "past": rng.standard_normal((B, cfg.layers, cfg.residual_channels), np.float32)}
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    run = lambda m: ort.InferenceSession(m.SerializeToString(), opts,
                                         providers=["CPUExecutionProvider"]).run(None, feed)
    got = run(half)
    want = run(model)
    for g, w in zip(got, want):
        assert g.dtype == np.float32
        assert np.abs(g - w).max() < 1e-2


# -- on a GPU ------------------------------------------------------------------------------------
@needs_cuda
def test_cuda_fp32_parity_with_reference(bundle, ref):
    gpu = CudaBackend(bundle, device="cuda", precision="fp32")
    B, T = 3, 100  # 6 replays of 16 steps + a tail, and a chunk at an odd phase
    cond = random_cond(bundle.config, B, T, seed=13)
    x = np.random.default_rng(13).integers(0, 256, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    state = gpu.new_state(B)
    got = np.concatenate([gpu.teacher_force(cond[:, :7], x[:, :7], state),
                          gpu.teacher_force(cond[:, 7:], x[:, 7:], state)], axis=1)
    assert np.abs(got - want).max() < 1e-4
    u = uniforms(17, range(B), 0, T)
    want, _ = run_chunks(ref, cond, u, 1.0, [])
    got, _ = run_chunks(gpu, cond, u, 1.0, [7, 50])
    # fp32 on the GPU differs from the CPU in the last bits of the logits; a class flips
    # only if u lands within ~1e-6 of a CDF step (rare over 300 draws)
    assert (got == want).all()


@needs_cuda
@pytest.mark.parametrize("precision,bound", [("fp16", 1e-2), ("bf16", 5e-2)])
def test_cuda_half_precision_bounds(bundle, ref, precision, bound):
    gpu = CudaBackend(bundle, device="cuda", precision=precision)
    B, T = 2, 80
    cond = random_cond(bundle.config, B, T, seed=14)
    x = np.random.default_rng(14).integers(0, 256, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    got = gpu.teacher_force(cond, x, gpu.new_state(B))
    assert np.abs(got - want).max() < bound


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_replay_equals_eager(bundle, precision):
    graph = CudaBackend(bundle, device="cuda", precision=precision, graphs=True)
    eager = CudaBackend(bundle, device="cuda", precision=precision, graphs=False)
    B, T = 4, 16 * 5 + 9
    cond = random_cond(bundle.config, B, T, seed=15)
    u = uniforms(19, range(B), 0, T)
    a, sa = run_chunks(graph, cond, u, 1.0, [40])
    b, sb = run_chunks(eager, cond, u, 1.0, [40])
    assert (a == b).all()
    # the same kernels on the same buffers: expected bitwise equal; allow cuBLAS to pick
    # another algorithm on the capture stream
    assert torch.allclose(sa.ring.float(), sb.ring.float(), atol=1e-5)
    assert graph.loop.captures == 1  # one period graph for (B=4, sample), replayed
    x = np.random.default_rng(15).integers(0, 256, (B, T))
    la = graph.teacher_force(cond, x, graph.new_state(B))
    lb = eager.teacher_force(cond, x, eager.new_state(B))
    assert np.abs(la - lb).max() < 1e-6


@needs_trt
@pytest.mark.parametrize("precision,bound", [("fp32", 1e-4), ("fp16", 1e-2)])
def test_tensorrt_parity(tmp_path, precision, bound):
    from vocoder.export.exporter import export_bundle

    torch.manual_seed(0)
    cfg = make_config()
    save_bundle(WaveNet(cfg), cfg, tmp_path)
    export_bundle(tmp_path)
    b = load_bundle(tmp_path)
    ref = TorchBackend(b)
    trt = TensorRTBackend(b, precision=precision)
    (built,) = trt.build_engines([2])
    assert built.parent == tmp_path / "engines" and built.is_file()
    B, T = 2, 70
    cond = random_cond(cfg, B, T, seed=16)
    x = np.random.default_rng(16).integers(0, 256, (B, T))
    want = ref.teacher_force(cond, x, ref.new_state(B))
    got = trt.teacher_force(cond, x, trt.new_state(B))
    assert np.abs(got - want).max() < bound
    if precision == "fp32":
        u = uniforms(23, range(B), 0, T)
        assert (run_chunks(trt, cond, u, 1.0, [9])[0] == run_chunks(ref, cond, u, 1.0, [])[0]
                ).all()
    mtime = built.stat().st_mtime_ns
    again = TensorRTBackend(b, precision=precision)
    assert again.build_engines([2]) == [built] and built.stat().st_mtime_ns == mtime


@pytest.mark.skipif(HAS_CUDA, reason="checks the benchmark's message when no GPU is visible")
def test_gpu_benchmark_exits_clearly_without_gpu(capsys, tmp_path):
    from bench import gpu

    assert gpu.main(["--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no GPU to benchmark" in err and "Nothing was measured" in err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("shape,dtype", [((3,), torch.int64), ((2, 10, 16), torch.float32),
                                         ((1, 3, 5), torch.float16), ((64,), torch.int64)])
def test_aligned_rows_start_on_256_bytes(shape, dtype):
    t = gpu_loop.aligned_rows(5, shape, dtype, torch.device("cpu"))
    assert t.shape == (5, *shape) and t.dtype == dtype and not t.any()
    for i in range(5):
        assert t[i].is_contiguous()
        assert t[i].data_ptr() % gpu_loop.ALIGN_BYTES == 0
    t[2].fill_(1)
    assert int(t.sum()) == int(np.prod(shape))


# -- the TensorRT executor's bindings, against a stand-in engine that runs torch ---------------
def _host_array(ptr: int, shape, dtype) -> np.ndarray:
    import ctypes

    n = int(np.prod(shape)) * np.dtype(dtype).itemsize
    return np.frombuffer((ctypes.c_char * n).from_address(ptr), dtype=dtype).reshape(shape)


class _StandInTrt(_FakeTrt):
    """A ``tensorrt`` whose engine reads its inputs from the bound (CPU) addresses, runs
    the torch step there and writes the outputs to the bound addresses, as an engine
    would on the GPU. Checks the executor's shapes, names, addresses and dtypes."""

    class DataType:
        FLOAT, INT64 = "float", "int64"

    def __init__(self, model):
        super().__init__()
        outer = self

        class Context:
            def __init__(self):
                self.shapes, self.addr, self.calls = {}, {}, 0

            def set_input_shape(self, name, shape):
                self.shapes[name] = tuple(shape)
                return True

            def set_tensor_address(self, name, ptr):
                assert ptr % 256 == 0, (name, ptr)  # TensorRT's requirement
                self.addr[name] = ptr

            def execute_async_v3(self, stream):
                cfg, B = model.cfg, self.shapes["x"][0]
                L, R, G, A = cfg.layers, cfg.residual_channels, cfg.gate_channels, 256
                get = lambda n, shape, dt: torch.from_numpy(
                    _host_array(self.addr[n], shape, dt).copy())
                with torch.no_grad():
                    lg, pr = model.step(get("x", (B,), np.int64),
                                        get("cond_t", (B, L, G), np.float32),
                                        get("past", (B, L, R), np.float32))
                _host_array(self.addr["logits"], (B, A), np.float32)[:] = lg.numpy()
                _host_array(self.addr["present"], (B, L, R), np.float32)[:] = pr.numpy()
                self.calls += 1
                return True

        class Engine:
            num_io_tensors = 5

            def get_tensor_name(self, i):
                return trt_engine._IO[i]

            def get_tensor_dtype(self, name):
                return outer.DataType.INT64 if name == "x" else outer.DataType.FLOAT

            def create_execution_context(self):
                outer.context = Context()
                return outer.context

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, blob):
                assert blob == b"engine"
                return Engine()

        self.Runtime = Runtime


def test_tensorrt_executor_bindings_with_stand_in(bundle, ref, tmp_path, monkeypatch):
    fake = _StandInTrt(bundle.build_model())
    monkeypatch.setitem(sys.modules, "tensorrt", fake)
    cfg = bundle.config
    (tmp_path / "step.onnx").write_bytes(b"graph")
    step = trt_engine.TensorRTStep(tmp_path / "step.onnx", tmp_path / "engines", "fp32",
                                   cfg.layers, cfg.residual_channels, cfg.gate_channels, 256,
                                   torch.device("cpu"), gpu_name="stand-in")
    B, T = 3, 41
    step.engine_path(B).parent.mkdir()
    step.engine_path(B).write_bytes(b"engine")  # cached: nothing is built
    layout = RingLayout.of(cfg)
    loop = PeriodLoop(step, layout.slots, layout.size, cfg.residual_channels,
                      cfg.gate_channels, 256, torch.device("cpu"))
    cond = random_cond(cfg, B, T, seed=20)
    x = np.random.default_rng(20).integers(0, 256, (B, T))
    ring = loop.new_ring(B)
    got = np.concatenate([loop.run(ring, None, 0, cond[:, :19], "teacher", teacher=x[:, :19]),
                          loop.run(ring, None, 19, cond[:, 19:], "teacher", teacher=x[:, 19:])],
                         axis=1)
    assert fake.context.shapes == step.shapes(B) and fake.context.calls == T
    assert np.abs(got - ref.teacher_force(cond, x, ref.new_state(B))).max() < 1e-5
    u = uniforms(2, range(B), 0, T)
    want, _ = run_chunks(ref, cond, u, 1.0, [])
    ring = loop.new_ring(B)
    x0 = ref.new_state(B).x
    a = loop.run(ring, x0, 0, cond[:, :30], "sample", u=u[:, :30])
    b = loop.run(ring, a[:, -1], 30, cond[:, 30:], "sample", u=u[:, 30:])
    assert (np.concatenate([a, b], axis=1) == want).all()
