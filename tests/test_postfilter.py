"""The mel post-filter (vocoder.postfilter): identity on its own mels, a pull toward the
target within its limits, streaming equal to the whole utterance, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features.mel import mel_frames, preset
from vocoder.postfilter import (
    MAX_BOOST_DB,
    MAX_CUT_DB,
    MAX_PASSES,
    MelPostfilter,
    analysis,
    postfilter,
)

HIFI = preset("hifigan-16k")
# The other framing, log and power conventions, shrunk to keep the test quick.
CENTRED = preset("vocos", sample_rate=16000, n_fft=256, hop_length=64, win_length=256,
                 n_mels=40, fmax=8000)
LOG10 = preset("parallelwavegan", sample_rate=16000, n_fft=512, hop_length=128,
               win_length=512, fmax=7600)
POWER = CENTRED.replace(power=2.0, name="power-test")


def _noise(n: int, seed: int = 0, scale: float = 0.05) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n) * scale


def _target(audio: np.ndarray, cfg) -> np.ndarray:
    """(T, n_mels) raw log mels of ``audio``, as a dataset stores them."""
    return mel_frames(audio, cfg).T


def _level_db(x: np.ndarray) -> float:
    return 10 * np.log10(np.mean(np.asarray(x, np.float64) ** 2))


@pytest.mark.parametrize("cfg", [HIFI, CENTRED, LOG10, POWER], ids=lambda c: c.name)
def test_its_own_mels_leave_the_audio_as_it_is(cfg):
    x = _noise(20 * cfg.hop_length + 37)  # not a whole number of frames
    out = postfilter(x, _target(x, cfg), cfg, passes=2)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.abs(out - x).max() < 1e-5


@pytest.mark.parametrize("cfg", [HIFI, CENTRED], ids=lambda c: c.name)
def test_noise_in_the_valleys_is_taken_out(cfg):
    """A tone plus white noise, pulled toward the mels of the tone with far less noise:
    the distance to the target shrinks, more with a second pass and more with eight."""
    sr, n = cfg.sample_rate, 12 * cfg.hop_length * 8
    t = np.arange(n) / sr
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    clean = tone + _noise(n, 1, 1e-4)
    noisy = tone + _noise(n, 2, 0.01)
    target = _target(clean, cfg)
    dist = lambda a: np.abs(_target(a, cfg) - target)[2:-2].mean()  # edges: padding
    one, two, eight = (postfilter(noisy, target, cfg, passes=p) for p in (1, 2, 8))
    assert dist(one) < 0.5 * dist(noisy)
    assert dist(eight) < dist(two) < dist(one)
    # The tone survives: its band keeps its level within a dB.
    for out in (two, eight):
        assert abs(_level_db(out) - _level_db(tone)) < 1.0


def test_cut_and_boost_are_limited():
    cfg = HIFI
    x = _noise(30 * cfg.hop_length, 3)
    silent = np.full_like(_target(x, cfg), np.log(cfg.clamp))
    cut = postfilter(x, silent, cfg)
    assert -MAX_CUT_DB - 1 < _level_db(cut) - _level_db(x) < -MAX_CUT_DB + 3
    loud = _target(x, cfg) + np.log(10 ** (30 / 20))  # a 30 dB louder target
    boosted = postfilter(x, loud, cfg)
    assert MAX_BOOST_DB - 1 < _level_db(boosted) - _level_db(x) < MAX_BOOST_DB + 0.5


@pytest.mark.parametrize("cfg", [HIFI, CENTRED], ids=lambda c: c.name)
@pytest.mark.parametrize("passes", [1, 2, MAX_PASSES])
def test_streaming_equals_the_whole_utterance(cfg, passes):
    n = 17 * cfg.hop_length + 5
    x, other = _noise(n, 4), _noise(n, 5, 0.2)
    target = _target(other, cfg)  # far from x, so every gain is in play
    whole = postfilter(x, target, cfg, passes)
    rng = np.random.default_rng(6)
    for sizes in ([1] * 300 + [n], [cfg.hop_length * 3] * 100, list(rng.integers(1, 900, 99))):
        f = MelPostfilter(target, cfg, n, passes)
        out, s = [], 0
        for k in sizes:
            k = min(int(k), n - s)
            if k <= 0:
                break
            out.append(f.push(x[s:s + k]))
            s += k
        out.append(f.finish())
        assert np.array_equal(np.concatenate(out), whole)


@pytest.mark.parametrize("passes", [1, 3])
def test_streaming_holds_back_less_than_the_windows_span(passes):
    # hifigan-16k centres an 800-sample window in 1024: its zero ends cost no latency.
    cfg, n = HIFI, 4000
    x = _noise(n, 9)
    span = np.flatnonzero(analysis(cfg).window)
    held = span[-1] - span[0]  # the non-zero span less one sample
    f, out = MelPostfilter(_target(x, cfg), cfg, n, passes), 0
    for i in range(n):
        out += len(f.push(x[i:i + 1]))
        assert i + 1 - out <= passes * held
    assert held < cfg.n_fft - cfg.hop_length


@pytest.mark.parametrize("n", [1, 50, 413, 600])
def test_utterances_shorter_than_a_window(n):
    x = _noise(n, 7)
    out = postfilter(x, _target(x, HIFI), HIFI, passes=2)
    assert out.shape == (n,) and np.abs(out - x).max() < 1e-5


def test_memory_stays_bounded_while_streaming():
    cfg, chunk = HIFI, 800
    n = 400 * chunk  # 20 s
    f = MelPostfilter(np.zeros((n // cfg.hop_length, cfg.n_mels)), cfg, n, passes=2)
    x = _noise(chunk, 8)
    for _ in range(400 - 1):
        f.push(x)
        for p in f.passes:
            assert p.buf is None or len(p.buf) <= 2 * cfg.n_fft + chunk
            assert len(p.ola) <= 2 * cfg.n_fft + chunk


def test_zero_passes_is_the_identity():
    x = _noise(1000).astype(np.float32)
    assert np.array_equal(postfilter(x, np.zeros((5, 80)), HIFI, passes=0), x)


def test_bad_input_is_a_clear_error():
    x = _noise(800)
    for bad in (-1, MAX_PASSES + 1, 1.5, True, "2"):
        with pytest.raises(VocoderError, match="postfilter must be a number of passes"):
            postfilter(x, _target(x, HIFI), HIFI, passes=bad)
    with pytest.raises(VocoderError, match=r"target mels must be \(T, 80\)"):
        postfilter(x, _target(x, HIFI).T, HIFI)
    f = MelPostfilter(_target(x, HIFI), HIFI, len(x))
    with pytest.raises(VocoderError, match="got 900 samples, expected 800"):
        f.push(np.zeros(900))
    f = MelPostfilter(_target(x, HIFI), HIFI, len(x))
    f.push(x[:100])
    with pytest.raises(VocoderError, match="got 100 samples, expected 800"):
        f.finish()
