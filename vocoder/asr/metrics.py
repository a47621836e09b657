"""Scoring frame-wise phone sequences: collapsing, edit distance, phone error rate.

A frame-wise sequence becomes a phone sequence by merging runs of the same phone (so two
identical phones in a row count as one, in the reference as in the hypothesis) and, for
the phone error rate, dropping silence. PER is the edit distance (substitutions +
deletions + insertions, each costing 1) over the reference length, pooled over
utterances: total edits / total reference phones. It can exceed 1 (insertions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Segment:
    """One run of equal frames: ``phone`` over frames ``[start, end)``."""

    phone: str
    start: int
    end: int


def collapse(frames: Sequence[str]) -> list[Segment]:
    """Runs of equal neighbours: ``a a b b b a`` -> (a, 0, 2), (b, 2, 5), (a, 5, 6)."""
    out: list[Segment] = []
    start = 0
    for i in range(1, len(frames) + 1):
        if i == len(frames) or frames[i] != frames[start]:
            out.append(Segment(frames[start], start, i))
            start = i
    return out


def phone_sequence(frames: Sequence[str], silence: str) -> list[str]:
    """The collapsed sequence without silence: what PER compares."""
    return [s.phone for s in collapse(frames) if s.phone != silence]


@dataclass(frozen=True)
class EditCounts:
    """A minimum-cost alignment of a hypothesis to a reference."""

    substitutions: int
    deletions: int
    insertions: int

    @property
    def total(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def edit_counts(reference: Sequence[str], hypothesis: Sequence[str]) -> EditCounts:
    """Levenshtein distance split into substitutions, deletions (reference items not
    matched) and insertions; among alignments of minimum total, the one with the most
    substitutions (then fewest deletions), so the split is deterministic."""
    n, m = len(reference), len(hypothesis)
    # Each cell: (total, -substitutions, deletions, insertions); min() picks the tie rule.
    prev = [(j, 0, 0, j) for j in range(m + 1)]
    for i in range(1, n + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, m + 1):
            t, s, d, ins = prev[j - 1]
            if reference[i - 1] == hypothesis[j - 1]:
                diag = (t, s, d, ins)
            else:
                diag = (t + 1, s - 1, d, ins)
            t, s, d, ins = prev[j]
            delete = (t + 1, s, d + 1, ins)
            t, s, d, ins = cur[j - 1]
            insert = (t + 1, s, d, ins + 1)
            cur.append(min(diag, delete, insert))
        prev = cur
    _, neg_s, d, ins = prev[m]
    return EditCounts(-neg_s, d, ins)


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    return edit_counts(reference, hypothesis).total


def phone_error_rate(pairs: Sequence[tuple[Sequence[str], Sequence[str]]]) -> float:
    """Pooled PER of (reference, hypothesis) phone sequences; NaN without reference
    phones."""
    edits = sum(edit_distance(r, h) for r, h in pairs)
    n = sum(len(r) for r, _ in pairs)
    return edits / n if n else float("nan")
