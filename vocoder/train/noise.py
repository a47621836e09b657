"""Injected input noise (FFTNet, Jin et al. 2018).

FFTNet's rationale: a model trained only on clean past samples (teacher forcing) has never
seen the small errors that its own samples carry when it runs free; they compound, and the
output drifts towards noise. Perturbing the previous-sample input during training, while
keeping the targets clean, teaches the model to predict the clean next sample from an
imperfect past.

The noise is drawn from a generator seeded by (seed, rank, step), so a resumed run adds
exactly the noise the uninterrupted run would have added, with no state to checkpoint.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from vocoder.train.data import Group


def noisy_inputs(x: np.ndarray, std: float, classes: int,
                 rng: np.random.Generator) -> np.ndarray:
    """``x`` (B, T) int64 mu-law classes plus Gaussian noise of ``std`` classes, rounded
    and clipped to ``[0, classes - 1]``; (B, T) int64."""
    noise = rng.normal(0.0, std, size=x.shape)
    return np.clip(np.rint(x + noise), 0, classes - 1).astype(x.dtype)


def with_input_noise(groups: list[Group], std: float, classes: int, seed: int, rank: int,
                     step: int) -> list[Group]:
    """The batch's groups with noisy previous-sample inputs (targets untouched); the
    groups themselves when ``std`` is 0."""
    if std <= 0:
        return groups
    rng = np.random.default_rng([seed, rank, step])
    return [dataclasses.replace(g, x=noisy_inputs(g.x, std, classes, rng)) for g in groups]
