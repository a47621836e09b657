"""Ring-buffer layout: all layers' d_l slots in one array ``(B, sum(d_l), R)``.

At step t layer l reads and then overwrites slot ``offset_l + t mod d_l``. Every d_l
divides the largest dilation, so the slot table has period ``max_dilation`` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocoder.config import WaveNetConfig, dilations, ring_size, ring_slots


@dataclass(frozen=True)
class RingLayout:
    """slots (period, L) int64: ring row of every layer at step ``t`` is ``slots[t % period]``."""

    size: int
    period: int
    slots: np.ndarray

    @classmethod
    def of(cls, cfg: WaveNetConfig) -> RingLayout:
        period = max(dilations(cfg))
        table = np.array([ring_slots(cfg, t) for t in range(period)], dtype=np.int64)
        table.setflags(write=False)
        return cls(ring_size(cfg), period, table)

    def row(self, t: int) -> np.ndarray:
        return self.slots[t % self.period]

