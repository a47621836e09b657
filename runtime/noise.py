"""Sampling noise that every backend reproduces: one uniform per (seed, stream, sample).

A counter-based hash, not a sequential generator: the uniform for sample t of stream s
does not depend on how generation was cut into chunks, segments or batches, so
streaming, offline synthesis and every backend draw the same number for the same
sample. Segments of one folded utterance share its stream, so overlapping segments see
the same noise where they overlap (which keeps their cross-fade coherent).

    h = fmix32(seed ^ fmix32(stream ^ fmix32(t ^ GOLDEN)))    (murmur3's finaliser)
    u = ((h >> 8) + 0.5) / 2**24                                  in (0, 1), exact in float32
"""

from __future__ import annotations

import numpy as np

_M32 = np.uint64(0xFFFFFFFF)
GOLDEN = 0x9E3779B9


def _fmix32(h: np.ndarray) -> np.ndarray:
    # uint64 arithmetic masked to 32 bits: no overflow warnings, same bits as uint32.
    h = h & _M32
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & _M32
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & _M32
    h ^= h >> np.uint64(16)
    return h


def uniforms(seed: int, streams, t0: int, n: int) -> np.ndarray:
    """Uniforms for samples ``t0 .. t0+n-1`` of each stream: (B, n) float32 in (0, 1)."""
    streams = np.asarray(streams, dtype=np.uint64).reshape(-1, 1)
    t = np.arange(t0, t0 + n, dtype=np.uint64)[None, :]
    h = _fmix32(t ^ np.uint64(GOLDEN))
    h = _fmix32(streams ^ h)
    h = _fmix32(np.uint64(seed & 0xFFFFFFFF) ^ h)
    return (((h >> np.uint64(8)).astype(np.float64) + 0.5) / 16777216.0).astype(np.float32)
