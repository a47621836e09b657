"""WORLD pitch shift: the F0 moves by the asked semitones, the envelope and length stay."""

import math

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features import f0
from vocoder.features.pitch_shift import shift_log_f0, world_pitch_shifts

needs_pyworld = pytest.mark.skipif(not f0.pyworld_available(),
                                   reason="pyworld missing (pip install pyworld)")
SR, HOP = 16000, 80


def buzz(freq: float, seconds: float) -> np.ndarray:
    """A harmonic tone with a fixed spectral slope (what WORLD's analysis expects)."""
    t = np.arange(int(seconds * SR)) / SR
    return 0.1 * sum(np.sin(2 * np.pi * k * freq * t) / k for k in range(1, 20)
                     if k * freq < SR / 2)


@needs_pyworld
def test_the_f0_moves_by_each_shift():
    x = buzz(140.0, 0.8)
    log_f0, vuv = f0.extract_f0(x, SR, HOP)
    shifts = [-3.0, 0.0, 4.0]
    ys = world_pitch_shifts(x, SR, HOP, log_f0, vuv, shifts)
    assert len(ys) == len(shifts)
    for semitones, y in zip(shifts, ys):
        assert y.shape == x.shape and y.dtype == np.float64
        lf2, v2 = f0.extract_f0(y, SR, HOP)
        both = (vuv > 0) & (v2 > 0)
        assert both.mean() > 0.8
        cents = 1200 / math.log(2) * np.median((lf2 - log_f0)[both])
        assert abs(cents - 100 * semitones) < 15, (semitones, cents)


@needs_pyworld
def test_the_envelope_stays():
    """A shift moves the harmonics, not the spectral slope: the energy above 2 kHz keeps
    its share of the whole within a small factor."""
    x = buzz(140.0, 0.8)
    log_f0, vuv = f0.extract_f0(x, SR, HOP)

    def high_share(a):
        s = np.abs(np.fft.rfft(a)) ** 2
        return s[int(2000 * a.size / SR):].sum() / s.sum()

    (y,) = world_pitch_shifts(x, SR, HOP, log_f0, vuv, [3.0])
    assert 0.5 < high_share(y) / high_share(x) < 2.0


def test_shift_log_f0_moves_one_column_of_a_copy():
    f = np.zeros((4, 3), np.float32)
    g = shift_log_f0(f, 1, 12.0)
    np.testing.assert_allclose(g[:, 1], math.log(2.0), rtol=1e-6)
    assert not g[:, [0, 2]].any() and not f.any()


@needs_pyworld
def test_bad_tracks_are_clear_errors():
    x = buzz(140.0, 0.2)
    with pytest.raises(VocoderError, match="one length"):
        world_pitch_shifts(x, SR, HOP, np.zeros(5), np.zeros(6), [1.0])
    with pytest.raises(VocoderError, match="mono"):
        world_pitch_shifts(np.zeros((2, 100)), SR, HOP, np.zeros(5), np.zeros(5), [1.0])
    with pytest.raises(VocoderError, match="NaN"):
        world_pitch_shifts(x, SR, HOP, np.full(5, np.nan), np.ones(5), [1.0])
