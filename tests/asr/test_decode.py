"""Decoding frames: the argmax, and the best path with a phone-switch penalty."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from vocoder.asr.decode import best_path


def _objective(lp, path, penalty):
    return lp[np.arange(len(path)), path].sum() - penalty * np.count_nonzero(np.diff(path))


def test_no_penalty_is_the_argmax():
    lp = np.log(np.random.default_rng(0).dirichlet(np.ones(5), size=40))
    assert best_path(lp, 0.0).tolist() == lp.argmax(-1).tolist()


def test_a_short_weak_flicker_is_smoothed_a_strong_one_kept():
    lp = np.log(np.tile([0.9, 0.1], (7, 1)))
    lp[3] = np.log([0.4, 0.6])  # one frame favours phone 1 a little
    assert best_path(lp, 0.0).tolist() == [0, 0, 0, 1, 0, 0, 0]
    assert best_path(lp, 2.0).tolist() == [0] * 7
    lp[2:5] = np.log([0.01, 0.99])  # three frames favour it strongly
    assert best_path(lp, 2.0).tolist() == [0, 0, 1, 1, 1, 0, 0]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("penalty", [0.3, 1.0, 4.0])
def test_best_path_is_optimal(seed, penalty):
    lp = np.log(np.random.default_rng(seed).dirichlet(np.ones(3), size=6))
    best = max(_objective(lp, np.array(p), penalty)
               for p in itertools.product(range(3), repeat=6))
    assert _objective(lp, best_path(lp, penalty), penalty) == pytest.approx(best)


def test_negative_penalty_is_refused():
    with pytest.raises(ValueError, match="switch_penalty"):
        best_path(np.zeros((2, 2)), -1.0)
