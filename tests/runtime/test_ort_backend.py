"""ONNX Runtime backend against the torch reference, folding, streaming, bad input."""

import tracemalloc

import numpy as np
import pytest
import torch

from tests.conftest import make_bundle, make_config, random_features
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.config import receptive_field
from vocoder.errors import VocoderError
from vocoder.mulaw import quantize, silence_class
from vocoder.runtime import engine, folding
from vocoder.runtime.conditioning import Conditioner
from vocoder.runtime.ort_backend import OrtBackend

GC = np.array([0.5, -1.0], np.float32)


def test_teacher_forced_ort_equals_torch_forward(cond_bundle):
    path, model, cfg = cond_bundle
    feats = random_features(cfg, 40)
    audio = np.sin(np.arange(40 * cfg.hop_length) * 0.05).astype(np.float32) * 0.5
    with Vocoder.load(path) as voc:
        got = voc.teacher_forced_logits(audio, feats, speaker=2, gc=GC)
    x = np.concatenate([[silence_class()], quantize(audio)[:-1]])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)[None], torch.from_numpy(feats)[None],
                           torch.tensor([2]), torch.from_numpy(GC)[None])[0].T.numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_free_running_ort_matches_torch_for_2000_samples(cond_bundle):
    path, _, cfg = cond_bundle
    feats = random_features(cfg, -(-2000 // cfg.hop_length), seed=1)
    ref = Vocoder.load(path, backend="torch").synthesize(feats, 1, seed=7, gc=GC)
    got = Vocoder.load(path).synthesize(feats, 1, seed=7, gc=GC, fold=False)
    assert len(got) >= 2000
    assert np.array_equal(ref[:2000], got[:2000])


def test_stream_concatenation_equals_unfolded_synthesis(cond_bundle):
    path, _, cfg = cond_bundle
    feats = random_features(cfg, 50, seed=2)
    with Vocoder.load(path) as voc:
        whole = voc.synthesize(feats, 0, seed=3, gc=GC, fold=False)
        chunks = list(voc.stream(feats, 0, seed=3, gc=GC, chunk=37))
    assert all(len(c) == 37 for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), whole)


def test_batch_equals_each_alone_and_state_resets(cond_bundle):
    path, _, cfg = cond_bundle
    a, b = random_features(cfg, 30, seed=3), random_features(cfg, 21, seed=4)
    with Vocoder.load(path) as voc:
        both = voc.synthesize_batch([a, b], [0, 2], seed=5, gcs=[GC, GC], fold=False)
        alone_a = voc.synthesize(a, 0, seed=5, gc=GC, fold=False)
        again_a = voc.synthesize(a, 0, seed=5, gc=GC, fold=False)
    assert np.array_equal(both[0], alone_a)
    assert np.array_equal(alone_a, again_a)
    assert len(both[1]) == 21 * cfg.hop_length


def test_folding_with_overlap_of_receptive_field_matches_unfolded(cond_bundle):
    """Teacher forcing: after its warm-up, every segment reproduces the unfolded logits."""
    path, _, cfg = cond_bundle
    backend = OrtBackend(load_bundle(path))
    feats = random_features(cfg, 60, seed=5)
    n = 60 * cfg.hop_length
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, n)
    cond = Conditioner(backend.config, feats, 1, GC, n)
    whole = np.concatenate([lg[0] for _, lg in engine.teacher_force(
        backend, [engine.Job(cond, 0, 0, n, x)])])
    rf = receptive_field(cfg)
    settings = folding.FoldSettings(segments=4, min_segment=50, overlap=rf - 1, crossfade=0)
    segs = folding.plan(n, settings)
    assert len(segs) == 4
    jobs = [engine.Job(cond, 0, s.warm, s.length, x[s.warm:s.end]) for s in segs]
    out = [np.empty((j.length, 256), np.float32) for j in jobs]
    for tau, lg in engine.teacher_force(backend, jobs, chunk=29):
        for b, j in enumerate(jobs):
            m = min(lg.shape[1], j.length - tau)
            if m > 0:
                out[b][tau:tau + m] = lg[b, :m]
    for s, o in zip(segs, out):
        kept = o[s.keep - s.warm:]
        assert np.abs(kept - whole[s.keep:s.end]).max() < 1e-5


def test_folded_synthesis_keeps_segment_0_as_generated_unfolded(cond_bundle):
    """Segments run side by side as one batch; segment 0 (no warm-up) is the unfolded
    audio itself up to where segment 1 fades in. (That folding changes the rest is
    tested with a model whose past matters: test_backends_agree.py.)"""
    path, _, cfg = cond_bundle
    feats = random_features(cfg, 80, seed=6)
    n = 80 * cfg.hop_length
    settings = folding.FoldSettings(segments=5, min_segment=40, overlap=8, crossfade=4)
    with Vocoder.load(path) as voc:
        out = voc.synthesize(feats, 1, seed=0, gc=GC, fold=True, fold_settings=settings)
        whole = voc.synthesize(feats, 1, seed=0, gc=GC)
    assert out.shape == (n,) and out.dtype == np.float32
    segs = folding.plan(n, settings)
    assert len(segs) == 5 and segs[0].warm == 0
    first = segs[1].keep - settings.crossfade  # where segment 1 fades in
    assert first > 0 and np.array_equal(out[:first], whole[:first])


def test_assemble_crossfades_between_segments():
    segs = folding.plan(100, folding.FoldSettings(segments=2, min_segment=10, overlap=20,
                                                  crossfade=10))
    a = [np.full(s.length, float(i + 1), np.float32) for i, s in enumerate(segs)]
    out = folding.assemble(segs, a, 100, 10)
    assert np.all(out[:40] == 1) and np.all(out[50:] == 2)
    assert np.all(np.diff(out[40:50]) > 0)  # a monotone ramp from 1 to 2


def test_streaming_memory_does_not_grow_with_the_input_length(tmp_path):
    """Streaming keeps chunk-sized working memory: the first 10 chunks of a 10-minute
    input take no more than those of a 10-second one (beyond the input's own size), far
    below the 10-minute utterance's conditioning (3.7 GB)."""
    cfg = make_config(cond_channels=5)
    make_bundle(tmp_path, cfg)

    def peak_of(seconds: int) -> tuple[int, int]:
        frames = seconds * cfg.sample_rate // cfg.hop_length
        feats = np.zeros((frames, 5), np.float32)
        with Vocoder.load(tmp_path) as voc:
            next(voc.stream(feats, chunk=400))  # warm: sessions, buffers, compiled code
            tracemalloc.start()
            gen = voc.stream(feats, chunk=400)
            for _ in range(10):
                next(gen)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            gen.close()
        return peak, feats.nbytes

    short, _ = peak_of(10)
    long, input_bytes = peak_of(600)
    whole_cond_bytes = 600 * cfg.sample_rate * cfg.layers * cfg.gate_channels * 4
    # The input is never copied whole: what the long one adds is small against it.
    assert long - short < input_bytes // 4 + (1 << 20)
    assert long < whole_cond_bytes // 50


@pytest.mark.parametrize("features, kw, msg", [
    (np.zeros((10, 4), np.float32), {}, "expected 5 feature dimensions"),
    (np.zeros((10, 5), np.int64), {}, "floating-point"),
    (np.full((10, 5), np.nan, np.float32), {}, "NaN/Inf"),
    (np.zeros((0, 5), np.float32), {}, "zero frames"),
    (np.zeros((10,), np.float32), {}, "expected shape"),
    (np.zeros((10, 5), np.float32), {"speaker": 3}, "unknown speaker 3"),
    (np.zeros((10, 5), np.float32), {"speaker": None}, "speakers"),
    (np.zeros((10, 5), np.float32), {"gc": np.zeros(3)}, "gc"),
    (np.zeros((10, 5), np.float32), {"seed": -1}, "seed"),
    (np.zeros((10, 5), np.float32), {"temperature": float("nan")}, "temperature"),
    (None, {}, "needs features"),
])
def test_bad_input_gives_clear_errors(cond_bundle, features, kw, msg):
    path = cond_bundle[0]
    args = {"speaker": 0, "gc": GC, **kw}
    with Vocoder.load(path) as voc:
        with pytest.raises(VocoderError, match=msg):
            voc.synthesize(features, **args)
        with pytest.raises(VocoderError, match=msg):
            next(voc.stream(features, **args))


def test_unknown_backend_lists_available(cond_bundle):
    with pytest.raises(VocoderError, match="unknown backend 'tpu'.*onnxruntime"):
        Vocoder.load(cond_bundle[0], backend="tpu")


def test_unconditional_model_needs_n_samples(tmp_path):
    make_bundle(tmp_path, make_config(n_speakers=2))
    with Vocoder.load(tmp_path) as voc:
        with pytest.raises(VocoderError, match="n_samples"):
            voc.synthesize(speaker=1)
        a = voc.synthesize(speaker=1, n_samples=300, seed=1)
        b = Vocoder.load(tmp_path, backend="torch").synthesize(speaker=1, n_samples=300, seed=1)
    assert np.array_equal(a, b)


def test_a_model_with_no_conditioning_at_all_runs_on_every_cpu_backend(tmp_path):
    """No features, no speaker, no gc: the gate bias alone conditions every step."""
    make_bundle(tmp_path, make_config(cond_channels=0))
    out = {}
    for backend in ("onnxruntime", "torch", "native"):
        with Vocoder.load(tmp_path, backend=backend) as voc:
            out[backend] = voc.synthesize(None, n_samples=300, seed=2)
    assert np.array_equal(out["onnxruntime"], out["torch"])
    assert np.array_equal(out["onnxruntime"], out["native"])


def test_requested_provider_that_cannot_start_is_an_error(cond_bundle):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA provider present: the fallback cannot be provoked")
    with pytest.raises(VocoderError, match="CUDAExecutionProvider"):
        Vocoder.load(cond_bundle[0], providers=["CUDAExecutionProvider"])


def test_two_lanes_give_the_output_of_one(cond_bundle):
    # 20 folded segments (>= 2 * MIN_LANE_BATCH): the batch runs as two lanes of 10.
    path, _, cfg = cond_bundle
    feats = random_features(cfg, 400, seed=6)
    settings = folding.FoldSettings(segments=20, min_segment=100, overlap=40, crossfade=8)
    outs = {}
    for lanes in (1, 2):
        with Vocoder.load(path, lanes=lanes) as voc:
            assert voc.backend.lanes == lanes
            outs[lanes] = voc.synthesize(feats, 1, seed=4, gc=GC, fold=True,
                                         fold_settings=settings)
            assert (voc.backend._pool is not None) == (lanes == 2)  # the second thread ran
            be = voc.backend
            cond = np.random.default_rng(0).standard_normal((16, 30, cfg.layers,
                                                             cfg.gate_channels)).astype(
                np.float32)
            x = np.random.default_rng(1).integers(0, cfg.quantization_channels, (16, 30))
            outs[lanes, "tf"] = be.teacher_force(cond, x, be.new_state(16))
    assert np.array_equal(outs[1], outs[2])
    assert np.array_equal(outs[1, "tf"], outs[2, "tf"])


def test_lanes_must_be_one_or_two(cond_bundle):
    with pytest.raises(VocoderError, match="lanes must be 1 or 2"):
        Vocoder.load(cond_bundle[0], lanes=3)


def test_conditioning_written_in_place_equals_a_fresh_array(cond_bundle, monkeypatch):
    from vocoder.runtime.conditioning import condition_batch

    path, _, cfg = cond_bundle
    with Vocoder.load(path) as voc:
        be = voc.backend
        in_place = []
        into = be.condition_into
        monkeypatch.setattr(be, "condition_into",
                            lambda *a: in_place.append(a[-1].shape[0]) or into(*a))
        a = Conditioner(be.config, random_features(cfg, 60, seed=1), 1, GC, 60 * cfg.hop_length)
        b = Conditioner(be.config, random_features(cfg, 45, seed=2), 2, -GC, 45 * cfg.hop_length)
        # rows 1-3 are interior ranges of one shape (one in-place call), row 0 starts the
        # utterance, row 4 runs past the end of b (zero padded)
        n = 50
        reqs = [(a, 0, n), (a, 300, 300 + n), (a, 500, 500 + n), (b, 200, 200 + n),
                (b, 45 * cfg.hop_length - 20, 45 * cfg.hop_length - 20 + n)]
        out = np.full((len(reqs), n, cfg.layers, cfg.gate_channels), np.nan, np.float32)
        got = condition_batch(be, reqs, out)
        assert got is out and np.isfinite(out).all()
        assert sum(in_place) >= 2  # interior rows went through condition_into
        for row, (c, s0, s1) in enumerate(reqs):
            assert np.array_equal(out[row], c.compute(be, s0, s1))


def test_rings_are_allocated_once_per_batch_size_and_reset(cond_bundle, monkeypatch):
    path, _, cfg = cond_bundle
    feats = random_features(cfg, 30, seed=9)
    with Vocoder.load(path) as voc:
        be = voc.backend
        made = []
        new_ring = be._new_ring
        monkeypatch.setattr(be, "_new_ring", lambda b: made.append(b) or new_ring(b))
        first = voc.synthesize(feats, 1, seed=2, gc=GC, fold=False)
        second = voc.synthesize(feats, 1, seed=2, gc=GC, fold=False)
        assert made == [1]  # the second utterance reused the first one's ring ...
        assert np.array_equal(first, second)  # ... reset: nothing carried over
        voc.synthesize_batch([feats, feats], [0, 1], seed=2, gcs=[GC, GC], fold=False)
        assert made == [1, 2]
        state = be.new_state(2)
        assert made == [1, 2] and not state.ring.any()
        be.release_state(state)
        assert state.ring is None


def test_numpy_sampler_without_numba_gives_the_same_audio(cond_bundle, monkeypatch):
    import sys

    from vocoder.runtime import sampling, step_loop
    from vocoder.runtime.sampling import sample_inv

    path, _, cfg = cond_bundle
    feats = random_features(cfg, 25, seed=3)
    with Vocoder.load(path) as voc:
        compiled = voc.synthesize(feats, 2, seed=8, gc=GC, fold=False)
        import vocoder.runtime

        monkeypatch.setitem(sys.modules, "vocoder.runtime.native_kernels", None)
        monkeypatch.delattr(vocoder.runtime, "native_kernels", raising=False)
        assert sampling.host_sampler() is sample_inv  # what a machine without numba gets
        voc.backend._ops = step_loop.numpy_ops(sample_inv)
        assert np.array_equal(voc.synthesize(feats, 2, seed=8, gc=GC, fold=False), compiled)


def test_streaming_backend_prefers_the_compiled_loop(monkeypatch):
    from vocoder.runtime import registry

    monkeypatch.setattr(registry, "probe", lambda name: (name == "native", "test"))
    assert registry.streaming_backend() == "native"
    assert registry.resolve("auto", live=True) == "native"
    assert registry.resolve("auto", live=False) == "onnxruntime"
    assert registry.resolve("torch", live=True) == "torch"
    monkeypatch.setattr(registry, "probe", lambda name: (name != "native", "no numba"))
    assert registry.streaming_backend() == "onnxruntime"
