"""Native (numba) backend against the torch reference: logits, sampled classes, batching,
chunking, state reset, the compiled sampler and tanh, and errors."""

import sys

import numpy as np
import pytest
import torch

from tests.conftest import make_bundle, make_config, random_features
from vocoder.api import Vocoder
from vocoder.errors import VocoderError
from vocoder.mulaw import quantize, silence_class
from vocoder.runtime import folding, registry
from vocoder.runtime.noise import uniforms
from vocoder.runtime.sampling import sample, sample_inv

pytest.importorskip("numba")

GC = np.array([0.5, -1.0], np.float32)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """(path, model, cfg): local + speaker + vector conditioning, exported; built once."""
    cfg = make_config(cond_channels=5, n_speakers=3, gc_channels=2)
    path = tmp_path_factory.mktemp("native") / "bundle"
    model = make_bundle(path, cfg)
    return path, model, cfg


@pytest.fixture(scope="module")
def voc(bundle):
    with Vocoder.load(bundle[0], backend="native") as v:
        yield v


def test_teacher_forced_logits_equal_torch_forward(bundle, voc):
    path, model, cfg = bundle
    feats = random_features(cfg, 40)
    audio = np.sin(np.arange(40 * cfg.hop_length) * 0.05).astype(np.float32) * 0.5
    got = voc.teacher_forced_logits(audio, feats, speaker=2, gc=GC)
    x = np.concatenate([[silence_class()], quantize(audio)[:-1]])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)[None], torch.from_numpy(feats)[None],
                           torch.tensor([2]), torch.from_numpy(GC)[None])[0].T.numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4


@pytest.mark.parametrize("overrides", [
    dict(residual_channels=5, gate_channels=14, skip_channels=7, layers=5, stacks=1,
         dilation_limit=4),                     # sizes that are not multiples of 8
    dict(quantization_channels=17, n_speakers=2),  # unconditional locally, odd A
])
def test_teacher_forced_logits_equal_torch_for_odd_sizes(tmp_path, overrides):
    cfg = make_config(**overrides)
    model = make_bundle(tmp_path / "b", cfg, seed=3)
    n = 300
    audio = (np.sin(np.arange(n) * 0.07) * 0.6).astype(np.float32)
    spk = 1 if cfg.n_speakers else None
    with Vocoder.load(tmp_path / "b", backend="native") as v:
        got = v.teacher_forced_logits(audio, None, speaker=spk)
    q = cfg.quantization_channels
    x = np.concatenate([[silence_class(q)], quantize(audio, q)[:-1]])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)[None], None,
                           None if spk is None else torch.tensor([spk]))[0].T.numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_bf16_weights_stay_close_to_torch(bundle):
    """bf16 weights: a stated looser bound (measured 1.4e-3 here, 2.4e-3 on a 20-layer
    R=64 model) and >= 99 % of classes sampled from the logits unchanged (99.8 %)."""
    path, model, cfg = bundle
    n_frames = 200
    feats = random_features(cfg, n_frames, seed=6)
    n = n_frames * cfg.hop_length
    audio = (np.sin(np.arange(n) * 0.05) * 0.5).astype(np.float32)
    with Vocoder.load(path, backend="native", precision="bf16") as v:
        assert v.backend.describe()["precision"] == "bf16"
        got = v.teacher_forced_logits(audio, feats, speaker=1, gc=GC)
    x = np.concatenate([[silence_class()], quantize(audio)[:-1]])
    with torch.no_grad():
        ref = model.eval()(torch.from_numpy(x)[None], torch.from_numpy(feats)[None],
                           torch.tensor([1]), torch.from_numpy(GC)[None])[0].T.numpy()
    assert np.abs(got - ref).max() < 1e-2
    u = uniforms(0, [0], 0, n)[0]
    assert (sample(got, u, 1.0) == sample(ref, u, 1.0)).mean() >= 0.99


def test_unknown_precision_is_a_vocoder_error(bundle):
    with pytest.raises(VocoderError, match="precision"):
        Vocoder.load(bundle[0], backend="native", precision="int4")


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_free_running_classes_match_torch_for_2000_samples(bundle, voc, temperature):
    path, _, cfg = bundle
    feats = random_features(cfg, -(-2000 // cfg.hop_length), seed=1)
    with Vocoder.load(path, backend="torch") as ref_voc:
        ref = ref_voc.synthesize(feats, 1, seed=7, temperature=temperature, gc=GC)
    got = voc.synthesize(feats, 1, seed=7, temperature=temperature, gc=GC, fold=False)
    assert len(got) >= 2000
    assert np.array_equal(ref, got)


def test_batch_equals_each_alone_and_state_resets(bundle, voc):
    _, _, cfg = bundle
    a, b = random_features(cfg, 30, seed=3), random_features(cfg, 21, seed=4)
    both = voc.synthesize_batch([a, b], [0, 2], seed=5, gcs=[GC, -GC], fold=False)
    alone_a = voc.synthesize(a, 0, seed=5, gc=GC, fold=False)
    again_a = voc.synthesize(a, 0, seed=5, gc=GC, fold=False)
    assert np.array_equal(both[0], alone_a)
    assert np.array_equal(alone_a, again_a)
    # b's audio does not depend on what runs beside it in the batch (another neighbour,
    # longer than b, on the same noise streams).
    c = random_features(cfg, 40, seed=6)
    beside_c = voc.synthesize_batch([c, b], [1, 2], seed=5, gcs=[-GC, -GC], fold=False)[1]
    assert len(both[1]) == 21 * cfg.hop_length
    assert np.array_equal(both[1], beside_c)


def test_batch_of_two_matches_torch_batch(bundle, voc):
    path, _, cfg = bundle
    a, b = random_features(cfg, 25, seed=8), random_features(cfg, 25, seed=9)
    with Vocoder.load(path, backend="torch") as ref_voc:
        ref = ref_voc.synthesize_batch([a, b], [1, 0], seed=2, gcs=[GC, GC], fold=False)
    got = voc.synthesize_batch([a, b], [1, 0], seed=2, gcs=[GC, GC], fold=False)
    assert all(np.array_equal(r, g) for r, g in zip(ref, got))


def test_stream_concatenation_equals_unfolded_synthesis(bundle, voc):
    _, _, cfg = bundle
    feats = random_features(cfg, 50, seed=2)
    whole = voc.synthesize(feats, 0, seed=3, gc=GC, fold=False)
    chunks = list(voc.stream(feats, 0, seed=3, gc=GC, chunk=37))
    assert all(len(c) == 37 for c in chunks[:-1])
    assert np.array_equal(np.concatenate(chunks), whole)


def test_folded_synthesis_equals_onnxruntime_folded(bundle, voc):
    """Folding runs the segments as one batch; ORT (tested against torch) folds alike."""
    path, _, cfg = bundle
    feats = random_features(cfg, 400, seed=10)
    settings = folding.FoldSettings(segments=3, min_segment=500, overlap=200, crossfade=50)
    got = voc.synthesize(feats, 2, seed=4, gc=GC, fold=True, fold_settings=settings)
    with Vocoder.load(path) as ort:
        ref = ort.synthesize(feats, 2, seed=4, gc=GC, fold=True, fold_settings=settings)
    assert len(got) == 400 * cfg.hop_length
    assert np.array_equal(got, ref)


def test_compiled_sampler_gives_the_classes_of_the_numpy_sampler():
    from vocoder.runtime import native_kernels as nk

    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((4000, 256)) * 3).astype(np.float32)
    logits[:50, :3] = logits[:50, 3:6]  # ties for the argmax
    u = rng.random(4000).astype(np.float32)
    u[:10] = [np.float32(1 - 2 ** -24)] * 10  # the clamp to A - 1
    n = len(u)
    for t in (1.0, 0.7, 2.0):
        assert np.array_equal(nk.sample_rows(logits, u, np.full(n, 1.0 / t)),
                              sample(logits, u, t))
    assert np.array_equal(nk.sample_rows(logits, u, np.zeros(n)), sample(logits, u, 0.0))
    # per-row temperatures (a voiced temperature): each row as its own temperature gives
    inv = rng.choice([0.0, 1.0, 1.0 / 0.6], n)
    want = np.concatenate([sample(logits[i:i + 1], u[i:i + 1], 1.0 / v if v else 0.0)
                           for i, v in enumerate(inv)])
    assert np.array_equal(nk.sample_rows(logits, u, inv), want)
    assert np.array_equal(sample_inv(logits, u, inv), want)


def test_fast_tanh_is_accurate():
    from vocoder.runtime import native_kernels as nk

    x = np.linspace(-20, 20, 400_001, dtype=np.float32)
    err = np.abs(nk.tanh_array(x).astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() < 1e-6


def test_wrong_feature_dimension_is_a_vocoder_error(bundle, voc):
    _, _, cfg = bundle
    with pytest.raises(VocoderError, match="feature dimensions"):
        voc.synthesize(np.zeros((10, cfg.cond_channels + 1), np.float32), 0, gc=GC)
    with pytest.raises(VocoderError, match="NaN"):
        voc.synthesize(np.full((10, cfg.cond_channels), np.nan, np.float32), 0, gc=GC)


def test_bad_cond_and_state_are_vocoder_errors(bundle, voc):
    _, _, cfg = bundle
    backend = voc.backend
    state = backend.new_state(1)
    with pytest.raises(VocoderError, match="cond"):
        backend.generate(np.zeros((1, 4, cfg.layers + 1, cfg.gate_channels), np.float32),
                         state, np.full((1, 4), 0.5, np.float32), 1.0)
    with pytest.raises(VocoderError, match="new_state"):
        backend.generate(np.zeros((2, 4, cfg.layers, cfg.gate_channels), np.float32),
                         _two_stream_state(state), np.full((2, 4), 0.5, np.float32), 1.0)
    with pytest.raises(VocoderError, match="classes"):
        backend.teacher_force(np.zeros((1, 4, cfg.layers, cfg.gate_channels), np.float32),
                              np.full((1, 4), 256), state)
    assert state.t == 0


def _two_stream_state(state):
    """A two-stream state carrying a one-stream ring (the wrong shape)."""
    from vocoder.runtime.backend import StepState

    return StepState(state.ring, np.zeros(2, np.int64), 0)


def test_unexported_bundle_says_how_to_export(tmp_path):
    cfg = make_config(cond_channels=5)
    make_bundle(tmp_path / "raw", cfg, export=False)
    with pytest.raises(VocoderError, match="vocoder export"):
        Vocoder.load(tmp_path / "raw", backend="native")


def test_missing_numba_is_a_clear_error(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)
    ok, why = registry.probe("native")
    assert not ok and "pip install numba" in why
    with pytest.raises(VocoderError, match="numba is not installed.*Available: .*onnxruntime"):
        Vocoder.load(bundle[0], backend="native")


def test_describe_reports_first_call_time(voc):
    from vocoder.runtime import native_backend

    d = voc.backend.describe()
    # measured once per process and precision, by the call that compiled or loaded it
    assert d["backend"] == "native" and d["first_call_s"] > 0
    assert d["first_call_s"] == native_backend._FIRST_CALL_S["fp32"]
    assert d["precision"] == "fp32" and d["threads"] == 1
    assert d["weights_bytes"] == voc.backend.packed.nbytes > 0


def test_accepts_the_cli_threads_option(bundle):
    with Vocoder.load(bundle[0], backend="native", threads=1) as v:
        assert v.backend_name == "native"


def test_chunks_at_any_step_equal_one_call_when_dilations_exceed_the_past_block(tmp_path):
    # Dilations up to 64 > PAST_BLOCK: a layer's past tap runs in blocks of 16 steps that
    # chunk cuts (1, 7, 16, 37 steps) start in the middle of.
    from vocoder.runtime import native_kernels as nk

    cfg = make_config(layers=8, stacks=1, dilation_limit=128, cond_channels=3)
    assert max(cfg.dilations) > nk.PAST_BLOCK
    make_bundle(tmp_path / "b", cfg, seed=4)
    feats = random_features(cfg, -(-600 // cfg.hop_length), seed=2)
    with Vocoder.load(tmp_path / "b", backend="native") as v:
        be = v.backend
        n = 600
        cond = be.condition(feats[None], None, None, 0, n, 1)
        x = np.random.default_rng(0).integers(0, cfg.quantization_channels, (1, n))
        whole = be.teacher_force(cond, x, be.new_state(1))
        state, parts, t = be.new_state(1), [], 0
        for cut in (1, 7, 16, 37, n):
            cut = min(cut, n - t)
            parts.append(be.teacher_force(cond[:, t:t + cut], x[:, t:t + cut], state))
            t += cut
        assert t == n
        assert np.array_equal(np.concatenate(parts, axis=1), whole)
        u = uniforms(5, [0], 0, n)
        free = be.generate(cond, be.new_state(1), u, 1.0)
        state, parts, t = be.new_state(1), [], 0
        for cut in (3, 16, 29, n):
            cut = min(cut, n - t)
            parts.append(be.generate(cond[:, t:t + cut], state, u[:, t:t + cut], 1.0))
            t += cut
        assert np.array_equal(np.concatenate(parts, axis=1), free)
    with Vocoder.load(tmp_path / "b", backend="torch") as ref:
        rb = ref.backend
        want = rb.teacher_force(cond, x, rb.new_state(1))
        assert np.abs(want - whole).max() < 1e-4
        assert np.array_equal(rb.generate(cond, rb.new_state(1), u, 1.0), free)


def test_past_schedule_blocks_divide_the_dilations_and_stagger():
    from vocoder.runtime import native_kernels as nk

    d = [1, 2, 4, 8, 16, 32, 1, 2, 4, 8, 16, 32]
    blocks, phases, starts, ends = nk.past_schedule(d, np.arange(12) * 40, block=16)
    assert list(blocks) == [1, 2, 4, 8, 16, 16, 1, 2, 4, 8, 16, 16]
    assert np.all(phases < blocks) and np.all(phases >= 0)
    assert len(set(phases[blocks == 16])) == 4  # the four 16-step layers start apart
    assert list(ends - starts) == d
    with pytest.raises(ValueError, match="powers of two"):
        nk.past_schedule([1, 3], [0, 1])


def test_packed_weights_are_copies_on_a_huge_page_boundary():
    from vocoder.runtime import native_kernels as nk

    a = np.arange(1000, dtype=np.float32)
    b = np.arange(77, dtype=np.uint16).reshape(7, 11)
    ha, hb = nk.huge_page_arrays([a, b])
    assert np.array_equal(ha, a) and np.array_equal(hb, b) and hb.dtype == np.uint16
    assert ha.flags.c_contiguous and ha.flags.writeable and hb.shape == (7, 11)
    assert not np.shares_memory(ha, a)
    if sys.platform == "linux":
        assert ha.ctypes.data % nk.HUGE_PAGE == 0 and hb.ctypes.data % 64 == 0


def test_vectorised_exp_is_within_two_ulp_of_numpy():
    from vocoder.runtime import native_kernels as nk

    rng = np.random.default_rng(0)
    y = -np.concatenate([rng.random(200_000) * 50, rng.random(20_000) * 700, [0.0, 1e-300]])
    got, want = nk.exp_nonpos_array(y), np.exp(y)
    assert np.all(np.abs(got - want) <= 2 * np.spacing(want))
    # below -708 it stays at exp(-708): negligible against a softmax sum >= 1
    low = nk.exp_nonpos_array(np.array([-800.0, -np.inf]))
    assert np.all(np.abs(low - np.exp(-708.0)) <= 2 * np.spacing(np.exp(-708.0)))
