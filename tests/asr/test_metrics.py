"""Collapsing frame sequences, edit distance and phone error rate on known cases."""

from __future__ import annotations

import pytest

from vocoder.asr.metrics import (
    EditCounts,
    Segment,
    collapse,
    edit_counts,
    edit_distance,
    phone_error_rate,
    phone_sequence,
)


def test_collapse_runs():
    assert collapse(list("aabbba")) == [Segment("a", 0, 2), Segment("b", 2, 5),
                                        Segment("a", 5, 6)]
    assert collapse([]) == []
    assert collapse(["x"]) == [Segment("x", 0, 1)]


def test_phone_sequence_drops_silence_after_collapsing():
    frames = ["_", "_", "a", "a", "_", "a", "b", "b", "_"]
    assert phone_sequence(frames, "_") == ["a", "a", "b"]


@pytest.mark.parametrize("ref, hyp, counts", [
    ("abc", "abc", (0, 0, 0)),
    ("abc", "", (0, 3, 0)),
    ("", "ab", (0, 0, 2)),
    ("abcd", "acd", (0, 1, 0)),
    ("ab", "axb", (0, 0, 1)),
    ("abc", "axc", (1, 0, 0)),
    ("kitten", "sitting", (2, 0, 1)),
    ("abcdef", "azced", (2, 1, 0)),
])
def test_edit_counts_known_cases(ref, hyp, counts):
    got = edit_counts(list(ref), list(hyp))
    assert got == EditCounts(*counts)
    assert edit_distance(list(ref), list(hyp)) == sum(counts)


def test_edit_distance_is_symmetric_in_total():
    a, b = list("intention"), list("execution")
    assert edit_distance(a, b) == edit_distance(b, a) == 5


def test_phone_error_rate_is_pooled_over_reference_length():
    pairs = [(["a", "b"], ["a", "b"]), (["a", "b", "c", "d"], [])]
    assert phone_error_rate(pairs) == pytest.approx(4 / 6)
    assert phone_error_rate([(["a"], ["b", "c", "d"])]) == pytest.approx(3.0)  # insertions
