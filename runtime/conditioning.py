"""Conditioning for any sample range of one utterance, from a few frames of context.

A 10-minute utterance never materialises a 10-minute ``cond``: each chunk runs the
backend's ``condition`` on the frames it needs plus
:func:`vocoder.config.cond_context_frames` on each side, which makes the chunk equal the
whole-utterance result.
"""

from __future__ import annotations

import math

import numpy as np

from vocoder.config import cond_context_frames


class Conditioner:
    """cond for samples ``[s0, s1)`` of one utterance.

    features (Tf, D) float32, or None; ``normalize`` maps a slice of them to what the model
    was trained on (applied per chunk, so a long input is never copied whole); speaker an
    int or None; gc (gc_channels,) or None. Ranges past the end are padded with zeros
    (the extra samples are generated and discarded by the caller).
    """

    def __init__(self, backend, features: np.ndarray | None, speaker: int | None,
                 gc: np.ndarray | None, n_samples: int, normalize=None):
        self.backend = backend
        cfg = backend.config
        self.cfg = cfg
        self.features = features
        self.normalize = normalize
        self.speaker = None if speaker is None else np.array([speaker], dtype=np.int64)
        self.gc = None if gc is None else np.asarray(gc, dtype=np.float32)[None]
        self.n_samples = n_samples
        self.context = cond_context_frames(cfg)
        self._constant = None
        if not cfg.cond_channels:
            # Without local conditioning the bias is the same for every sample.
            self._constant = backend.condition(None, self.speaker, self.gc, 0, 1, 1)[0, 0]

    def __call__(self, s0: int, s1: int) -> np.ndarray:
        """(s1 - s0, L, G) float32."""
        n = s1 - s0
        if self._constant is not None:
            return np.broadcast_to(self._constant, (n, *self._constant.shape))
        hop = self.cfg.hop_length
        e = min(s1, self.n_samples)
        if e <= s0:  # entirely past the end: padding only
            return np.zeros((n, self.cfg.layers, self.cfg.gate_channels), np.float32)
        tf = self.features.shape[0]
        f0 = max(0, s0 // hop - self.context)
        f1 = min(tf, math.ceil(e / hop) + self.context)
        f = self.features[f0:f1]
        if self.normalize is not None:
            f = self.normalize(f)
        c = self.backend.condition(f[None], self.speaker, self.gc,
                                   s0 - f0 * hop, e - f0 * hop, 1)[0]
        if e < s1:
            c = np.concatenate([c, np.zeros((s1 - e, *c.shape[1:]), np.float32)])
        return c
