"""The engine with a context stack: pieces split at block boundaries, the context step at
each, on every CPU backend; refusals where a context stack cannot run."""

import numpy as np
import pytest
import torch

from tests.conftest import make_bundle, make_config, random_features
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.errors import VocoderError
from vocoder.mulaw import silence_class
from vocoder.runtime import engine, registry
from vocoder.runtime.conditioning import Conditioner
from vocoder.runtime.noise import uniforms
from vocoder.runtime.sampling import sample

CPU = ("torch", "onnxruntime", "native")
#: Blocks of P = 8 samples; hop 6, so blocks and frames do not line up.
CFG = make_config(layers=4, stacks=1, dilation_limit=4, cond_channels=3, n_speakers=2,
                  context_pool=8, context_channels=6, context_layers=4,
                  context_dilation_limit=4)
#: Without local conditioning: a constant bias plus the context stack's.
UNCOND = make_config(layers=3, stacks=1, dilation_limit=4, gc_channels=2, context_pool=5,
                     context_channels=4, context_layers=3, context_dilation_limit=2)
GC = np.array([0.3, -0.7], np.float32)


def _bundle(path, cfg):
    model = make_bundle(path, cfg).eval()
    return path, model


@pytest.fixture(scope="module")
def ctx_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory.mktemp("ctx") / "b", CFG)


@pytest.fixture(scope="module")
def uncond_bundle(tmp_path_factory):
    return _bundle(tmp_path_factory.mktemp("unc") / "b", UNCOND)


def _conditioner(cfg, n, seed=0):
    if cfg.cond_channels:
        feats = random_features(cfg, -(-n // cfg.hop_length), seed=seed)
        return Conditioner(cfg, feats, 1, None, n), feats
    return Conditioner(cfg, None, None, GC, n), None


def _forward(model, x, feats, cfg):
    """Torch forward logits (T, A) of one utterance's inputs x (T,)."""
    kw = {}
    if cfg.cond_channels:
        kw = dict(features=torch.from_numpy(feats)[None], speaker=torch.tensor([1]))
    else:
        kw = dict(gc=torch.from_numpy(GC)[None])
    with torch.no_grad():
        return model(torch.from_numpy(x)[None], **kw)[0].T.numpy()


@pytest.mark.parametrize("backend", CPU)
@pytest.mark.parametrize("chunk", [8, 5, 13, 1000])
def test_teacher_forced_pieces_equal_the_forward(ctx_bundle, backend, chunk):
    """Two utterances in lockstep (61 and 44 samples, neither a multiple of P = 8): every
    chunk size, dividing P, not dividing it, longer than the utterance, gives the
    forward's logits."""
    path, model = ctx_bundle
    be = registry.create(backend, load_bundle(path))
    rng = np.random.default_rng(1)
    lengths = (61, 44)
    xs = [rng.integers(0, 256, n) for n in lengths]
    conds = [_conditioner(CFG, n, seed=i) for i, n in enumerate(lengths)]
    jobs = [engine.Job(c, i, 0, n, x) for i, ((c, _), n, x) in
            enumerate(zip(conds, lengths, xs))]
    out = [np.zeros((n, 256), np.float32) for n in lengths]
    for tau, lg in engine.teacher_force(be, jobs, chunk=chunk):
        for b, n in enumerate(lengths):
            m = min(lg.shape[1], n - tau)
            if m > 0:
                out[b][tau:tau + m] = lg[b, :m]
    for b in range(2):
        ref = _forward(model, xs[b], conds[b][1], CFG)
        assert np.abs(out[b] - ref).max() < 1e-4, (backend, chunk, b)


@pytest.mark.parametrize("backend", CPU)
def test_teacher_forced_unconditional_context_model(uncond_bundle, backend):
    path, model = uncond_bundle
    with Vocoder.load(path, backend=backend) as voc:
        audio = np.sin(np.arange(53) * 0.3).astype(np.float32) * 0.6
        got = voc.teacher_forced_logits(audio, gc=GC)
    from vocoder.mulaw import quantize

    x = np.concatenate([[silence_class()], quantize(audio)[:-1]]).astype(np.int64)
    assert np.abs(got - _forward(model, x, None, UNCOND)).max() < 1e-4


def _classes(backend_name, path, cfg, n, chunk, seed=4):
    be = registry.create(backend_name, load_bundle(path))
    cond, feats = _conditioner(cfg, n)
    job = engine.Job(cond, 0, 0, n)
    out = np.concatenate([c[0] for _, c in engine.generate(be, [job], seed, 1.0,
                                                            chunk=chunk)])
    be.close()
    return out[:n], feats


def test_free_running_samples_are_the_models_own(ctx_bundle):
    """The classes generated block by block are what the parallel forward predicts from
    them: fed back as inputs (each shifted by one, after the silence class), the forward
    and the reference sampler with the same uniforms pick every one again."""
    path, model = ctx_bundle
    n = 75
    got, feats = _classes("torch", path, CFG, n, chunk=13)
    x = np.concatenate([[silence_class()], got[:-1]]).astype(np.int64)
    logits = _forward(model, x, feats, CFG)
    again = sample(logits, uniforms(4, [0], 0, n)[0], 1.0)
    np.testing.assert_array_equal(again, got)


@pytest.mark.parametrize("cfg_name", ["cond", "uncond"])
def test_every_cpu_backend_generates_the_torch_samples(ctx_bundle, uncond_bundle, cfg_name):
    path, _ = ctx_bundle if cfg_name == "cond" else uncond_bundle
    cfg = CFG if cfg_name == "cond" else UNCOND
    n = 70
    ref, _ = _classes("torch", path, cfg, n, chunk=1000)
    for backend in CPU:
        for chunk in (8, 5, 13, 1000):
            got, _ = _classes(backend, path, cfg, n, chunk)
            np.testing.assert_array_equal(got, ref, err_msg=f"{backend} chunk {chunk}")


@pytest.mark.parametrize("backend", CPU)
def test_stream_equals_unfolded_synthesis(ctx_bundle, backend):
    path, _ = ctx_bundle
    feats = random_features(CFG, 13, seed=2)
    with Vocoder.load(path, backend=backend) as voc:
        whole = voc.synthesize(feats, 1, seed=3, fold=False)
        for chunk in (8, 5, 13, 200):
            parts = list(voc.stream(feats, 1, seed=3, chunk=chunk))
            assert np.array_equal(np.concatenate(parts), whole), chunk


def test_folding_a_context_model_is_refused(ctx_bundle):
    path, _ = ctx_bundle
    feats = random_features(CFG, 13)
    with Vocoder.load(path, backend="onnxruntime") as voc:
        with pytest.raises(VocoderError, match="fold=True.*context stack.*fold=False"):
            voc.synthesize(feats, 1, fold=True)
        # the engine itself refuses a job that starts mid-utterance
        cond, _ = _conditioner(CFG, 78)
        with pytest.raises(VocoderError, match="start of the utterance"):
            next(engine.generate(voc.backend, [engine.Job(cond, 0, 16, 40)], 0, 1.0))


def test_gpu_backends_refuse_a_context_model_naming_the_cpu_ones(ctx_bundle):
    """The device loop runs on the CPU device here: the refusal comes before it starts."""
    from vocoder.runtime.backend import check_context_support
    from vocoder.runtime.cuda_backend import CudaBackend

    bundle = load_bundle(ctx_bundle[0])
    with pytest.raises(VocoderError, match="cuda backend cannot run .*context stack.*"
                                           "onnxruntime, native, torch"):
        CudaBackend(bundle, device="cpu")
    for name in ("cuda", "triton", "tensorrt"):
        with pytest.raises(VocoderError, match=f"the {name} backend cannot run"):
            check_context_support(name, bundle.config)
    for name in CPU:
        check_context_support(name, bundle.config)  # no error
    check_context_support("cuda", make_config())  # a model without a context stack
