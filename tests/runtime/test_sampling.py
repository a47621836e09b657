import numpy as np
import pytest

from vocoder.runtime.noise import uniforms
from vocoder.runtime.sampling import check_temperature, sample


def test_uniforms_do_not_depend_on_chunking():
    whole = uniforms(3, [0, 5], 0, 1000)
    parts = np.concatenate([uniforms(3, [0, 5], t, 100) for t in range(0, 1000, 100)], axis=1)
    assert np.array_equal(whole, parts)
    assert whole.dtype == np.float32 and whole.min() > 0 and whole.max() < 1


def test_uniforms_differ_by_seed_and_stream_and_look_uniform():
    a, b, c = uniforms(1, [0], 0, 50000), uniforms(2, [0], 0, 50000), uniforms(1, [1], 0, 50000)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
    hist = np.histogram(a, bins=10, range=(0, 1))[0]
    assert np.all(np.abs(hist - 5000) < 300)  # ~4 sigma
    assert abs(np.corrcoef(a[0, :-1], a[0, 1:])[0, 1]) < 0.02


def test_inverse_cdf_draws_follow_the_softmax():
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4]], np.float32))
    u = uniforms(0, [0], 0, 40000)[0]
    draws = np.array([sample(logits, u[i:i + 1], 1.0)[0] for i in range(0, 40000, 10)])
    freq = np.bincount(draws, minlength=4) / len(draws)
    assert np.allclose(freq, [0.1, 0.2, 0.3, 0.4], atol=0.03)


def test_inverse_cdf_edges_and_greedy():
    logits = np.array([[0.0, 5.0, 1.0]], np.float32)
    assert sample(logits, np.array([1e-9]), 1.0)[0] == 0
    assert sample(logits, np.array([1 - 1e-9]), 1.0)[0] == 2
    assert sample(logits, np.array([0.99]), 0.0)[0] == 1  # temperature 0 = argmax
    # low temperature concentrates on the argmax
    assert sample(logits, np.array([0.999]), 0.05)[0] == 1


@pytest.mark.parametrize("bad", [-1, float("inf"), "hot", None])
def test_bad_temperature(bad):
    with pytest.raises(ValueError, match="temperature"):
        check_temperature(bad)
