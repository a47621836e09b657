"""Log-F0 and voicing with pyworld: pitch accuracy, unvoiced silence, exact frame counts."""

import math

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features import f0

needs_pyworld = pytest.mark.skipif(not f0.pyworld_available(),
                                   reason="pyworld missing (pip install pyworld)")
SR, HOP = 16000, 80


def tone(freq, seconds, sr=SR, amp=0.5):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(
        np.float32)


@needs_pyworld
@pytest.mark.parametrize("method", ["dio", "harvest"])
@pytest.mark.parametrize("freq", [110.0, 220.0])
def test_sine_pitch_is_recovered(method, freq):
    silence = np.zeros(SR // 4, np.float32)
    x = np.concatenate([silence, tone(freq, 0.5), silence])
    if method == "harvest":
        # Harvest finds no F0 next to exact digital silence; a whisper of noise fixes it.
        x = x + np.random.default_rng(0).normal(0, 1e-3, x.size).astype(np.float32)
    log_f0, vuv = f0.extract_f0(x, SR, HOP, method=method)
    assert log_f0.shape == vuv.shape == (math.ceil(x.size / HOP),)
    assert log_f0.dtype == np.float32
    mid = slice((SR // 4 + SR // 10) // HOP, (SR // 4 + 4 * SR // 10) // HOP)
    assert np.all(vuv[mid] == 1.0)
    np.testing.assert_allclose(np.exp(log_f0[mid]), freq, rtol=0.02)
    if method == "dio":
        assert np.all(vuv[: (SR // 4 - SR // 20) // HOP] == 0.0)  # leading silence
        assert np.all(vuv[-(SR // 4 - SR // 20) // HOP:] == 0.0)  # trailing silence


@needs_pyworld
def test_silence_is_unvoiced_and_filled():
    log_f0, vuv = f0.extract_f0(np.zeros(SR // 2, np.int16), SR, HOP)
    assert np.all(vuv == 0.0)
    np.testing.assert_allclose(log_f0, math.log(f0.DEFAULT_F0_FLOOR), rtol=1e-6)


@needs_pyworld
@pytest.mark.parametrize("n", [80 * 50, 80 * 50 + 1, 80 * 50 - 1, 1000])
def test_exact_frame_count(n):
    x = tone(150, n / SR)
    log_f0, vuv = f0.extract_f0(x, SR, HOP)
    assert log_f0.shape == (math.ceil(n / HOP),)
    log_f0, vuv = f0.extract_f0(x, SR, HOP, n_frames=7)
    assert log_f0.shape == vuv.shape == (7,)


def test_interpolation_is_linear_in_log_f0_with_held_edges():
    log_f0 = np.log(np.array([1, 100, 1, 1, 400, 1], dtype=np.float64))
    vuv = np.array([0, 1, 0, 0, 1, 0])
    out = f0.interpolate_log_f0(log_f0, vuv, fill=0.0)
    a, b = math.log(100), math.log(400)
    np.testing.assert_allclose(out, [a, a, a + (b - a) / 3, a + 2 * (b - a) / 3, b, b])
    np.testing.assert_allclose(f0.interpolate_log_f0(log_f0, vuv * 0, fill=-1.0), -1.0)


@needs_pyworld
@pytest.mark.parametrize("kwargs,match", [
    ({"audio": np.zeros((2, 100))}, "mono"),
    ({"audio": np.zeros(0)}, "empty"),
    ({"method": "yin"}, "dio"),
    ({"audio": np.full(800, np.nan)}, "NaN"),
])
def test_bad_input(kwargs, match):
    args = {"audio": tone(150, 0.1), "sample_rate": SR, "hop_length": HOP, **kwargs}
    with pytest.raises(VocoderError, match=match):
        f0.extract_f0(**args)
