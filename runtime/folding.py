"""Offline folding: cut one long utterance into segments generated side by side as a
batch, each warming up over an overlap before its audio is kept, then cross-fade.

    segment k keeps [keep_k, end_k); it starts generating at warm_k = keep_k - overlap,
    and its last ``crossfade`` warm-up samples are blended (raised cosine) with the end
    of segment k-1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    warm: int   # first generated sample (global index)
    keep: int   # first kept sample
    end: int    # one past the last sample

    @property
    def length(self) -> int:
        return self.end - self.warm


@dataclass(frozen=True)
class FoldSettings:
    """segments: how many parallel segments to aim for; min_segment: shortest kept length
    (shorter utterances are not folded); overlap: warm-up samples; crossfade <= overlap."""

    segments: int = 32
    min_segment: int = 4000
    overlap: int = 1024
    crossfade: int = 256

    def __post_init__(self) -> None:
        if self.segments < 1:
            raise ValueError(f"fold segments must be >= 1, got {self.segments}")
        if self.overlap < 0 or self.crossfade < 0 or self.crossfade > self.overlap:
            raise ValueError(f"need 0 <= crossfade ({self.crossfade}) <= overlap "
                             f"({self.overlap})")
        if self.min_segment < 1:
            raise ValueError(f"min_segment must be >= 1, got {self.min_segment}")


def plan(n_samples: int, settings: FoldSettings) -> list[Segment]:
    """Segments covering ``[0, n_samples)``; one segment when it is too short to fold."""
    k = max(1, min(settings.segments, n_samples // settings.min_segment))
    seg = math.ceil(n_samples / k)
    out = []
    for keep in range(0, n_samples, seg):
        out.append(Segment(max(0, keep - settings.overlap), keep, min(n_samples, keep + seg)))
    return out


def assemble(segments: list[Segment], audio: list[np.ndarray], n_samples: int,
             crossfade: int) -> np.ndarray:
    """Join per-segment audio (each covering ``[warm, end)``) into (n_samples,) float32."""
    out = np.zeros(n_samples, dtype=np.float32)
    for seg, a in zip(segments, audio):
        a = a[: seg.length]
        x = min(crossfade, seg.keep - seg.warm)
        if x > 0:
            w = 0.5 - 0.5 * np.cos(np.pi * (np.arange(x) + 0.5) / x)
            lo = seg.keep - x
            mine = a[lo - seg.warm: seg.keep - seg.warm]
            out[lo:seg.keep] = out[lo:seg.keep] * (1 - w) + mine * w
        out[seg.keep:seg.end] = a[seg.keep - seg.warm:]
    return out
