import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from vocoder import mulaw

floats = st.floats(-1.0, 1.0, allow_nan=False, width=32)


@given(arrays(np.float32, st.integers(1, 200), elements=floats))
def test_classes_in_range_and_numpy_equals_torch(x):
    c = mulaw.quantize(x)
    assert c.dtype == np.int64 and c.min() >= 0 and c.max() <= 255
    assert np.array_equal(c, mulaw.quantize_torch(torch.from_numpy(x)).numpy())


@given(arrays(np.float64, st.integers(2, 200), elements=st.floats(-1, 1)))
def test_monotonic(x):
    x = np.sort(x)
    assert np.all(np.diff(mulaw.quantize(x)) >= 0)
    assert np.all(np.diff(mulaw.compand(x)) >= 0)


@given(arrays(np.float32, st.integers(1, 200), elements=floats))
def test_round_trip_within_one_quantisation_step(x):
    y = mulaw.dequantize(mulaw.quantize(x))
    # Classes round in the companded domain, half a class (1 / mu) either way, and the
    # expansion is steepest at the top: the largest error is from the loudest class
    # down to its lower boundary. (Half the linear step between the two loudest classes
    # is smaller: the expansion is convex.)
    mu = 255
    widest = (np.expm1(np.log1p(mu)) - np.expm1(np.log1p(mu) * (mu - 1) / mu)) / mu
    assert np.all(np.abs(y - x) <= widest + 1e-6)
    # and locally: the error never exceeds half the width of the class it fell in
    c = mulaw.quantize(x)
    lo = mulaw.dequantize(np.maximum(c - 1, 0))
    hi = mulaw.dequantize(np.minimum(c + 1, 255))
    assert np.all((x >= lo - 1e-6) & (x <= hi + 1e-6))


@given(arrays(np.int16, st.integers(1, 100)))
def test_int16_input_scaled(x):
    assert np.array_equal(mulaw.quantize(x), mulaw.quantize(x.astype(np.float64) / 32768))
    assert np.array_equal(mulaw.quantize(x),
                          mulaw.quantize_torch(torch.from_numpy(x)).numpy())


@settings(max_examples=30)
@given(arrays(np.float16, st.integers(1, 100), elements=st.floats(-1, 1, width=16)))
def test_float16_input(x):
    assert np.array_equal(mulaw.quantize(x), mulaw.quantize(x.astype(np.float32)))


def test_dequantize_numpy_equals_torch_and_silence():
    c = np.arange(256)
    assert np.array_equal(mulaw.dequantize(c), mulaw.dequantize_torch(torch.from_numpy(c)).numpy())
    # 256 classes have no exact zero: silence is the class nearest to it
    levels = np.abs(mulaw.dequantize(c))
    assert levels[mulaw.silence_class()] == levels.min() < 1e-4


def test_bad_dtypes():
    import pytest

    with pytest.raises(ValueError, match="float audio"):
        mulaw.quantize(np.array([1, 2], dtype=np.int32))
    with pytest.raises(ValueError, match="integers"):
        mulaw.dequantize(np.array([0.5]))
