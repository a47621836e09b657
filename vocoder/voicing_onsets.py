"""Where a free-running model misses voicing: by the time since each voiced stretch began.

A model that voices late (the first tens of milliseconds of every vowel come out as
noise) and one that drifts out of voicing the longer it runs free have the same V/UV
error; this tells them apart. Frames voiced in the reference are binned by how long ago
their voiced stretch (a run of consecutive voiced reference frames) began, and each bin
gets the share of its frames that the generated audio leaves unvoiced.
"""

from __future__ import annotations

import numpy as np

#: Bin edges in milliseconds since the voiced stretch's first frame (the last bin is open).
ONSET_BINS_MS = (0, 25, 50, 100, 200)


def onset_bin_labels() -> list[str]:
    """``["0-25", "25-50", ..., "200+"]`` (milliseconds), one per bin."""
    edges = ONSET_BINS_MS
    return [f"{a}-{b}" for a, b in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


def missed_by_onset(voiced_ref: np.ndarray, voiced_gen: np.ndarray, frame_ms: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(missed, total): int arrays (len(ONSET_BINS_MS),) of reference-voiced frames in
    each bin that are unvoiced in the generation, and of all reference-voiced frames in
    each bin. ``voiced_ref``, ``voiced_gen``: bool (T,) at a frame period of ``frame_ms``;
    a frame's time since onset is measured from its stretch's first frame."""
    ref = np.asarray(voiced_ref, bool)
    gen = np.asarray(voiced_gen, bool)
    if ref.shape != gen.shape or ref.ndim != 1:
        raise ValueError(f"voicing tracks must be two (T,) arrays of one length, got "
                         f"{ref.shape} and {gen.shape}")
    # index of each frame's stretch start: the last frame at or before it where the
    # reference turned voiced
    t = np.arange(ref.size)
    starts = ref & ~np.concatenate(([False], ref[:-1]))
    last_start = np.maximum.accumulate(np.where(starts, t, 0))
    since_ms = (t - last_start) * frame_ms
    bins = np.searchsorted(np.asarray(ONSET_BINS_MS, float), since_ms, side="right") - 1
    n = len(ONSET_BINS_MS)
    total = np.bincount(bins[ref], minlength=n)
    missed = np.bincount(bins[ref & ~gen], minlength=n)
    return missed, total
