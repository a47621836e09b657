"""The one sampling method all backends use: inverse CDF with one uniform per sample.

    p = softmax(logits / temperature)  (in float64)
    class = number of CDF entries strictly below u * sum(p)

temperature 0 means greedy (argmax). The uniforms come from :mod:`vocoder.runtime.noise`.
Backends on other precisions (fp16 on a GPU) can flip a class where ``u`` falls within
rounding of a CDF step; the tests measure how often.
"""

from __future__ import annotations

import numpy as np

from vocoder.errors import VocoderError


def sample(logits: np.ndarray, u: np.ndarray, temperature: float) -> np.ndarray:
    """logits (B, A), u (B,) -> classes (B,) int64."""
    if temperature <= 0.0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    z = logits.astype(np.float64) * (1.0 / temperature)
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    c = np.cumsum(p, axis=-1)
    thresh = u.astype(np.float64)[:, None] * c[:, -1:]
    k = (c < thresh).sum(axis=-1)
    return np.minimum(k, logits.shape[-1] - 1).astype(np.int64)


def check_temperature(temperature: float) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise VocoderError(f"temperature must be a number >= 0, got {temperature!r}") from None
    if not np.isfinite(t) or t < 0:
        raise VocoderError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return t
