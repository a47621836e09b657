"""The F0 excitation input: the signal itself, and that every path computes it alike
(torch, condition.onnx, chunked and streamed conditioning, every CPU backend)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.conftest import make_bundle, make_config
from vocoder import Vocoder
from vocoder.errors import VocoderError
from vocoder.excitation import excitation, frame_phase, with_phase

HOP = 6
CFG = make_config(cond_channels=4, n_speakers=2, upsample_scales=(2, 3), excitation=2,
                  f0_feature=1, vuv_feature=3, sample_rate=16000)


def features(frames: int, seed: int = 0, f0_hz=None, voiced=None) -> np.ndarray:
    """Raw features (Tf, 4): column 1 natural-log F0, column 3 the voicing flag."""
    rng = np.random.default_rng(seed)
    f = rng.standard_normal((frames, 4)).astype(np.float32)
    f0 = np.exp(rng.uniform(np.log(80), np.log(400), frames)) if f0_hz is None else f0_hz
    f[:, 1] = np.log(np.broadcast_to(f0, (frames,)))
    f[:, 3] = (rng.random(frames) < 0.7) if voiced is None else voiced
    return f


def test_constant_f0_gives_the_exact_sinusoid():
    tf, f0 = 50, 230.0
    x = with_phase(features(tf, f0_hz=np.full(tf, f0), voiced=np.ones(tf)), CFG)
    e = excitation(torch.from_numpy(x)[None], CFG)[0].numpy()
    n = np.arange(tf * HOP)
    for m in (1, 2):
        want = 2 * math.pi * m * f0 * n / CFG.sample_rate
        np.testing.assert_allclose(e[m - 1], np.sin(want), atol=2e-4)
        np.testing.assert_allclose(e[2 + m - 1], np.cos(want), atol=2e-4)


def test_phase_is_continuous_across_frames_when_f0_changes():
    tf = 80
    f0 = np.linspace(90, 350, tf)
    x = with_phase(features(tf, f0_hz=f0, voiced=np.ones(tf)), CFG)
    e = excitation(torch.from_numpy(x)[None], CFG)[0].numpy()
    phase = np.unwrap(np.arctan2(e[0], e[2]))
    step = np.diff(phase)
    want = 2 * math.pi * np.repeat(f0, HOP)[:-1] / CFG.sample_rate
    np.testing.assert_allclose(step, want, atol=1e-4)


def test_unvoiced_frames_are_silent():
    tf = 20
    voiced = np.array([1, 0] * 10, np.float32)
    x = with_phase(features(tf, voiced=voiced), CFG)
    e = excitation(torch.from_numpy(x)[None], CFG)[0].numpy()
    mask = np.repeat(voiced, HOP) > 0
    assert np.all(e[:, ~mask] == 0)
    assert np.all(np.abs(e[:, mask]).max(axis=0) > 0.5)


def test_frame_phase_is_the_running_sum_mod_two_pi():
    log_f0 = np.log(np.array([100.0, 200.0, 150.0, 400.0]))
    p = frame_phase(log_f0, CFG)
    want = np.mod(np.cumsum([0.0, *np.exp(log_f0[:-1])]) * 2 * math.pi * HOP / 16000,
                  2 * math.pi)
    np.testing.assert_allclose(p, want, atol=1e-6)
    assert p.dtype == np.float32 and np.all((p >= 0) & (p < 2 * math.pi))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    path = tmp_path_factory.mktemp("exc") / "bundle"
    make_bundle(path, CFG, seed=3)
    return path


def test_export_matches_torch(bundle):
    from vocoder.bundle import load_bundle

    diffs = load_bundle(bundle).export["onnx"]["max_abs_diff"]
    assert diffs["condition.onnx"] < 1e-4


@pytest.mark.parametrize("backend", ["onnxruntime", "native", "torch"])
def test_stream_equals_synthesize_and_backends_agree(bundle, backend):
    """The phase runs over the whole utterance: streamed chunks that cut frames anywhere
    must condition exactly as the whole utterance does."""
    f = features(90, seed=4)
    voc = Vocoder.load(bundle, backend=backend)
    whole = voc.synthesize(f, speaker=1, seed=2, fold=False)
    for chunk in (7, 64):
        streamed = np.concatenate(list(voc.stream(f, speaker=1, seed=2, chunk=chunk)))
        np.testing.assert_array_equal(streamed, whole)
    ref = Vocoder.load(bundle, backend="torch").synthesize(f, speaker=1, seed=2, fold=False)
    np.testing.assert_array_equal(whole, ref)


def test_conditioning_windows_equal_the_whole_utterance(bundle):
    """Each conditioning chunk of condition.onnx equals the torch model on the whole
    utterance: the frame phase travels with the window."""
    from vocoder.bundle import load_bundle

    f = features(70, seed=5)
    model = load_bundle(bundle).build_model()
    with torch.no_grad():
        whole = model.condition(torch.from_numpy(with_phase(f, CFG))[None],
                                torch.tensor([0])).numpy()[0]
    voc = Vocoder.load(bundle, backend="onnxruntime")
    cond = voc._conditioner(f, 0, None, None, normalize=True)
    for s0, s1 in [(0, 50), (37, 200), (211, 420)]:
        np.testing.assert_allclose(cond.compute(voc.backend, s0, s1), whole[s0:s1],
                                   atol=1e-4)


def test_excitation_changes_the_conditioning(bundle):
    """The input is used: shifting F0 changes the conditioning."""
    f = features(30, seed=6, voiced=np.r_[np.ones(15), np.zeros(15)])
    g = f.copy()
    g[:, 1] += math.log(2.0)
    voc = Vocoder.load(bundle, backend="onnxruntime")
    a = voc._conditioner(f, 0, None, None, normalize=True).compute(voc.backend, 0, 180)
    b = voc._conditioner(g, 0, None, None, normalize=True).compute(voc.backend, 0, 180)
    assert np.abs(a[: 14 * HOP] - b[: 14 * HOP]).max() > 1e-3


def test_bundle_refuses_a_normalisation_mismatch(tmp_path):
    with pytest.raises(VocoderError, match="normalisation"):
        make_bundle(tmp_path / "b", CFG.replace(log_f0_mean=4.0), export=False)


def test_config_validates_excitation_fields():
    with pytest.raises(ValueError, match="local conditioning"):
        make_config(excitation=1)
    with pytest.raises(ValueError, match="f0_feature"):
        make_config(cond_channels=3, excitation=1, f0_feature=3, vuv_feature=0)
    with pytest.raises(ValueError, match="log_f0_std"):
        make_config(cond_channels=3, excitation=1, f0_feature=0, vuv_feature=1,
                    log_f0_std=0.0)


# -- a lower temperature in voiced frames (FFTNet's conditional sampling) -----------------

@pytest.mark.parametrize("backend", ["onnxruntime", "native", "torch"])
def test_voiced_temperature_on_every_cpu_backend(bundle, backend):
    voiced = np.r_[np.zeros(20), np.ones(30), np.zeros(10)]
    f = features(60, seed=7, voiced=voiced)
    voc = Vocoder.load(bundle, backend=backend)
    plain = voc.synthesize(f, speaker=0, seed=1, temperature=0.9, fold=False)
    same = voc.synthesize(f, speaker=0, seed=1, temperature=0.9, voiced_temperature=0.9,
                          fold=False)
    np.testing.assert_array_equal(same, plain)
    low = voc.synthesize(f, speaker=0, seed=1, temperature=0.9, voiced_temperature=0.0,
                         fold=False)
    first_voiced = 20 * HOP
    np.testing.assert_array_equal(low[:first_voiced], plain[:first_voiced])
    assert not np.array_equal(low[first_voiced:], plain[first_voiced:])
    streamed = np.concatenate(list(voc.stream(f, speaker=0, seed=1, temperature=0.9,
                                              voiced_temperature=0.0, chunk=50)))
    np.testing.assert_array_equal(streamed, low)
    ref = Vocoder.load(bundle, backend="torch").synthesize(
        f, speaker=0, seed=1, temperature=0.9, voiced_temperature=0.0, fold=False)
    np.testing.assert_array_equal(low, ref)


def test_voiced_temperature_zero_is_greedy_in_voiced_frames(bundle):
    """Greedy where voiced: each voiced sample is the argmax of the logits the model
    gives it after the generated history."""
    f = features(40, seed=8, voiced=np.r_[np.zeros(10), np.ones(30)])
    voc = Vocoder.load(bundle, backend="onnxruntime")
    audio = voc.synthesize(f, speaker=1, seed=3, voiced_temperature=0.0, fold=False)
    logits = voc.teacher_forced_logits(audio, f, speaker=1)
    from vocoder.mulaw import quantize

    cls = quantize(audio, CFG.quantization_channels)
    v = slice(10 * HOP, None)
    np.testing.assert_array_equal(cls[v], logits[v].argmax(-1))
    assert (cls[: 10 * HOP] != logits[: 10 * HOP].argmax(-1)).any()


def test_voiced_temperature_needs_a_voicing_feature(tmp_path):
    path = tmp_path / "plain"
    make_bundle(path, make_config(cond_channels=3, upsample_scales=(2, 3)))
    voc = Vocoder.load(path)
    f = np.zeros((5, 3), np.float32)
    with pytest.raises(VocoderError, match="voicing feature"):
        voc.synthesize(f, voiced_temperature=0.5)
    with pytest.raises(VocoderError, match="temperature"):
        Vocoder.load(path).synthesize(f, voiced_temperature=-1.0)


def test_bundle_sampling_defaults_apply(tmp_path):
    from vocoder.bundle import SamplingDefaults, load_bundle, save_bundle

    path = tmp_path / "b"
    model = make_bundle(path, CFG, seed=3, export=False)
    save_bundle(model, CFG, path, sampling=SamplingDefaults(0.8, 0.3))
    from vocoder.export.exporter import export_bundle

    export_bundle(path)
    assert load_bundle(path).sampling == SamplingDefaults(0.8, 0.3)
    f = features(30, seed=9)
    voc = Vocoder.load(path)
    assert voc.resolve_temperatures(None, None) == (0.8, 0.3)
    assert voc.resolve_temperatures(None, 0.8) == (0.8, None)  # the same: "off"
    np.testing.assert_array_equal(
        voc.synthesize(f, speaker=0, fold=False),
        voc.synthesize(f, speaker=0, fold=False, temperature=0.8, voiced_temperature=0.3))
    assert not np.array_equal(
        voc.synthesize(f, speaker=0, fold=False),
        voc.synthesize(f, speaker=0, fold=False, temperature=0.8, voiced_temperature=0.8))
    doc = (path / "config.json").read_text()
    (path / "config.json").write_text(doc.replace('"temperature": 0.8', '"temperature": -1'))
    with pytest.raises(VocoderError, match="temperatures must be numbers"):
        load_bundle(path)
