"""Pre-emphasis noise shaping: the filters, the config field, and that training data,
synthesis (folded, unfolded, streamed, every CPU backend) and evaluation all use the
pre-emphasised domain of a model that has it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_bundle, make_config, random_features
from vocoder import Vocoder
from vocoder.config import WaveNetConfig
from vocoder.emphasis import (
    audio_to_classes,
    classes_to_audio,
    deemphasize,
    preemphasize,
)
from vocoder.errors import VocoderError
from vocoder.mulaw import dequantize, quantize

COEF = 0.85


def speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / 16000
    return (0.4 * np.sin(2 * np.pi * 140 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))
            + 0.05 * rng.standard_normal(n))


def test_preemphasis_is_the_first_difference():
    x = speechlike(500)
    e = preemphasize(x, COEF)
    assert e[0] == x[0]
    np.testing.assert_allclose(e[1:], x[1:] - COEF * x[:-1], rtol=0, atol=1e-15)


def test_deemphasis_inverts_preemphasis():
    x = speechlike(4000, seed=1)
    y, last = deemphasize(preemphasize(x, COEF), COEF)
    np.testing.assert_allclose(y, x, atol=1e-6)
    assert last == pytest.approx(x[-1], abs=1e-12)


def test_chunked_deemphasis_equals_the_whole():
    e = preemphasize(speechlike(3000, seed=2), COEF)
    whole, _ = deemphasize(e, COEF)
    parts, last = [], 0.0
    for a in range(0, len(e), 337):
        y, last = deemphasize(e[a:a + 337], COEF, last)
        parts.append(y)
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_zero_coefficient_is_plain_mu_law():
    x = speechlike(800, seed=3)
    np.testing.assert_array_equal(audio_to_classes(x, 256, 0.0), quantize(x))
    c = quantize(x)
    audio, _ = classes_to_audio(c, 256, 0.0)
    np.testing.assert_array_equal(audio, dequantize(c))


def test_int16_audio_is_scaled_like_float():
    x = speechlike(800, seed=4)
    pcm = np.round(x * 32767).astype(np.int16)
    np.testing.assert_allclose(preemphasize(pcm, COEF), preemphasize(pcm / 32768.0, COEF),
                               atol=1e-12)


def test_shaped_noise_follows_a_falling_tilt():
    """Quantisation noise in the pre-emphasised domain comes out low-passed: far less of it
    in the top band than plain mu-law leaves there."""
    x = speechlike(32000, seed=5) * 0.3
    plain = dequantize(quantize(x)) - x
    shaped = classes_to_audio(audio_to_classes(x, 256, COEF), 256, COEF)[0] - x

    def top_band_power(err):
        spec = np.abs(np.fft.rfft(err)) ** 2
        return spec[int(len(spec) * 0.75):].mean()

    assert top_band_power(shaped) < 0.5 * top_band_power(plain)


def test_config_accepts_and_checks_the_coefficient():
    assert WaveNetConfig().preemphasis == 0.0
    cfg = make_config(preemphasis=COEF)
    assert WaveNetConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in (-0.1, 1.0, True, "0.9"):
        with pytest.raises(VocoderError, match="preemphasis"):
            WaveNetConfig.from_dict({**cfg.to_dict(), "preemphasis": bad})


# -- through the product --------------------------------------------------------------
PLAIN = make_config(cond_channels=4, n_speakers=2)
SHAPED = PLAIN.replace(preemphasis=COEF)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    """The same random weights twice: without and with pre-emphasis."""
    root = tmp_path_factory.mktemp("emph")
    make_bundle(root / "plain", PLAIN, seed=7)
    make_bundle(root / "shaped", SHAPED, seed=7)
    return root / "plain", root / "shaped"


@pytest.mark.parametrize("backend", ["onnxruntime", "native", "torch"])
def test_synthesis_de_emphasises_what_the_model_generates(bundles, backend):
    """Same weights, same seed: the step loop draws the same classes, and the shaped
    bundle's audio is the plain one's de-emphasised, streamed or not."""
    f = random_features(PLAIN, 80, seed=1)
    plain = Vocoder.load(bundles[0], backend=backend).synthesize(f, speaker=1, seed=3,
                                                                 fold=False)
    voc = Vocoder.load(bundles[1], backend=backend)
    shaped = voc.synthesize(f, speaker=1, seed=3, fold=False)
    np.testing.assert_allclose(shaped, deemphasize(plain, COEF)[0], atol=1e-6)
    for chunk in (5, 128):
        streamed = np.concatenate(list(voc.stream(f, speaker=1, seed=3, chunk=chunk)))
        np.testing.assert_array_equal(streamed, shaped)


def test_folded_segments_are_stitched_before_de_emphasis(bundles):
    from vocoder.runtime.folding import FoldSettings

    f = random_features(PLAIN, 200, seed=2)
    fs = FoldSettings(segments=4, min_segment=100, overlap=64, crossfade=16)
    plain = Vocoder.load(bundles[0], backend="native").synthesize(
        f, speaker=0, seed=4, fold=True, fold_settings=fs)
    shaped = Vocoder.load(bundles[1], backend="native").synthesize(
        f, speaker=0, seed=4, fold=True, fold_settings=fs)
    np.testing.assert_allclose(shaped, deemphasize(plain, COEF)[0], atol=1e-6)


def test_teacher_forcing_reads_the_pre_emphasised_classes(bundles):
    """The shaped bundle scores audio x as the plain one scores x's pre-emphasis."""
    f = random_features(PLAIN, 30, seed=3)
    x = speechlike(30 * PLAIN.hop_length, seed=6) * 0.5
    e = dequantize(audio_to_classes(x, 256, COEF))
    shaped = Vocoder.load(bundles[1], backend="native").teacher_forced_logits(x, f, speaker=0)
    plain = Vocoder.load(bundles[0], backend="native").teacher_forced_logits(e, f, speaker=0)
    np.testing.assert_allclose(shaped, plain, atol=1e-5)


def test_training_data_holds_the_pre_emphasised_classes(tmp_path):
    import soundfile as sf

    from tests.train.synth import write_dataset
    from vocoder.train.data import load_train_data

    root = write_dataset(tmp_path / "d", n_train=2, n_test=1)
    shaped = load_train_data(root, preemphasis=COEF)
    for u in shaped.train:
        pcm, _ = sf.read(root / "wavs" / f"{u.id}.wav", dtype="int16")
        np.testing.assert_array_equal(u.classes, audio_to_classes(pcm, 256, COEF))
        assert not np.array_equal(u.classes, quantize(pcm))


def test_a_trained_shaped_run_is_evaluated_in_its_own_domain(tmp_path, monkeypatch):
    """Training carries the coefficient into the bundle, and evaluate's quantised-reference
    floor is the shaped copy: a 'vocoder' returning exactly that copy scores the floor."""
    import torch

    from tests.train.synth import write_dataset
    from vocoder.api import Vocoder
    from vocoder.data.corpus import load_manifest
    from vocoder.evaluate import evaluate
    from vocoder.train import load_preset, train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    data = write_dataset(tmp_path / "d", n_train=2, n_test=2, frames=120, hop=80, noise=0.01)
    preset = load_preset(Path(__file__).resolve().parents[1] / "configs" / "tiny.json")
    preset = type(preset)({**preset.model, "preemphasis": COEF},
                          preset.train.replace(steps=2, val_every=2, checkpoint_every=2))
    bundle = train(data, tmp_path / "run", preset, progress=False, device="cpu").bundle
    torch.set_num_threads(before)
    assert Vocoder.load(bundle, backend="torch").config.preemphasis == COEF
    # The trainer validated on the same shaped classes that evaluate scores.
    val_bits = float((tmp_path / "run" / "log.csv").read_text().splitlines()[-1]
                     .split(",")[-1])
    nll = evaluate(bundle, data, n=0, backend="torch", pitch_semitones=0, asr=False)
    assert nll["nll_bits_per_sample"] == pytest.approx(val_bits, abs=1e-4)

    refs = {}
    for e in load_manifest(data).entries:
        pcm, feats = load_manifest(data).load(e)
        refs[feats.tobytes()] = pcm
    monkeypatch.setattr(Vocoder, "synthesize", lambda self, f, *a, **k: classes_to_audio(
        audio_to_classes(refs[f.tobytes()], 256, COEF), 256, COEF)[0])
    res = evaluate(bundle, data, n=2, backend="torch", pitch_semitones=0, asr=False)
    assert res["mcd_db_quantized_reference"] > 0.01
    assert res["mcd_db"] == pytest.approx(res["mcd_db_quantized_reference"], abs=1e-3)


def test_without_pre_emphasis_the_audio_is_not_copied():
    """The default path (coef 0) hands the dequantised float32 audio straight through."""
    e = dequantize(quantize(speechlike(100)))
    y, last = deemphasize(e, 0.0, 0.25)
    assert y is e and last == 0.25
