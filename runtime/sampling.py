"""The one sampling method all backends use: inverse CDF with one uniform per sample.

    p = softmax(logits / temperature)  (in float64)
    class = number of CDF entries strictly below u * sum(p)

temperature 0 means greedy (argmax). The uniforms come from :mod:`vocoder.runtime.noise`.
The CPU backends also take a temperature per sample (a (B, T) array), which is how a
lower temperature in voiced frames works (FFTNet's conditional sampling).
Backends on other precisions (fp16 on a GPU) can flip a class where ``u`` falls within
rounding of a CDF step; the tests measure how often.
"""

from __future__ import annotations

import numpy as np

from vocoder.errors import VocoderError


def sample(logits: np.ndarray, u: np.ndarray, temperature: float) -> np.ndarray:
    """logits (B, A), u (B,), one temperature -> classes (B,) int64."""
    if temperature <= 0.0:
        return np.argmax(logits, axis=-1).astype(np.int64)
    return sample_inv(logits, u, np.full(len(logits), 1.0 / temperature))


def sample_inv(logits: np.ndarray, u: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """logits (B, A), u (B,), inv (B,) float64 inverse temperatures (0: greedy) ->
    classes (B,) int64."""
    z = logits.astype(np.float64) * inv[:, None]
    p = np.exp(z - z.max(axis=-1, keepdims=True))
    c = np.cumsum(p, axis=-1)
    thresh = u.astype(np.float64)[:, None] * c[:, -1:]
    k = np.minimum((c < thresh).sum(axis=-1), logits.shape[-1] - 1)
    greedy = inv <= 0.0
    if greedy.any():
        k[greedy] = np.argmax(logits[greedy], axis=-1)
    return k.astype(np.int64)


def host_sampler():
    """:func:`sample_inv`, or numba's compiled twin (the same classes, tested so; it
    releases the GIL) when numba is installed and loads."""
    try:
        from vocoder.runtime.native_kernels import sample_rows
    except Exception:  # noqa: BLE001 (no numba, or a numba that cannot load: numpy's)
        return sample_inv

    def compiled(logits, u, inv):
        return sample_rows(logits, np.ascontiguousarray(u, dtype=np.float32),
                           np.ascontiguousarray(inv, dtype=np.float64))
    return compiled


def inverse_temperatures(temperature, batch: int, steps: int) -> np.ndarray:
    """(B, T) float64 inverse temperatures, 0 where greedy, from one temperature or a
    (B, T) array of per-sample temperatures (e.g. lower in voiced frames)."""
    t = np.asarray(temperature, dtype=np.float64)
    if t.ndim and t.shape != (batch, steps):
        raise VocoderError(f"per-sample temperatures: expected shape ({batch}, {steps}), "
                           f"got {t.shape}")
    inv = np.divide(1.0, t, out=np.zeros_like(t), where=t > 0)
    return np.ascontiguousarray(np.broadcast_to(inv, (batch, steps)))


def is_per_sample(temperature) -> bool:
    """Whether ``temperature`` is an array of per-sample temperatures, not one number."""
    return np.ndim(temperature) > 0


def check_temperature(temperature: float) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise VocoderError(f"temperature must be a number >= 0, got {temperature!r}") from None
    if not np.isfinite(t) or t < 0:
        raise VocoderError(f"temperature must be a finite number >= 0, got {temperature!r}")
    return t
