"""Mu-law companding and 8-bit quantisation (mu = channels - 1 = 255), for numpy and torch.

Both implementations compute in float64 with the same formulas so that they give the same
classes for the same audio. Audio is float in [-1, 1]; int16 input is scaled by 1/32768.

    compand:   y = sign(x) * log1p(mu |x|) / log1p(mu)          in [-1, 1]
    quantise:  c = floor((y + 1) / 2 * mu + 0.5)                 in 0..mu
    expand:    y = 2 c / mu - 1;  x = sign(y) ((1 + mu)^|y| - 1) / mu
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is optional for the runtime
    import torch


def as_float64(x: np.ndarray) -> np.ndarray:
    """Float audio or int16 PCM (scaled by 1/32768) -> float64, unclipped."""
    x = np.asarray(x)
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected float audio in [-1, 1] or int16 PCM, got dtype {x.dtype}")
    return x.astype(np.float64)


def compand(x: np.ndarray, mu: int = 255) -> np.ndarray:
    """Mu-law compress float audio in [-1, 1] (clipped) to [-1, 1]; float64."""
    x = np.clip(as_float64(x), -1.0, 1.0)
    return np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)


def expand(y: np.ndarray, mu: int = 255) -> np.ndarray:
    """Inverse of :func:`compand`; float64."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.expm1(np.abs(y) * np.log1p(mu)) / mu


def quantize(x: np.ndarray, channels: int = 256) -> np.ndarray:
    """Float audio (or int16 PCM) -> mu-law classes, int64 in ``0..channels-1``."""
    mu = channels - 1
    y = compand(x, mu)
    return np.floor((y + 1.0) / 2.0 * mu + 0.5).astype(np.int64)


def dequantize(c: np.ndarray, channels: int = 256) -> np.ndarray:
    """Mu-law classes -> float32 audio in [-1, 1]."""
    c = np.asarray(c)
    if not np.issubdtype(c.dtype, np.integer):
        raise ValueError(f"mu-law classes must be integers, got dtype {c.dtype}")
    mu = channels - 1
    return expand(2.0 * c.astype(np.float64) / mu - 1.0, mu).astype(np.float32)


def silence_class(channels: int = 256) -> int:
    """The class of 0.0: the 'previous sample' before the first one."""
    return int(quantize(np.zeros(1), channels)[0])


# -- torch twins -------------------------------------------------------------------------
def quantize_torch(x: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Torch twin of :func:`quantize`: float (or int16) tensor -> int64 classes."""
    import torch

    mu = channels - 1
    if x.dtype == torch.int16:
        x = x.to(torch.float64) / 32768.0
    elif not x.is_floating_point():
        raise ValueError(f"mu-law expects float audio or int16 PCM, got dtype {x.dtype}")
    x = x.to(torch.float64).clamp(-1.0, 1.0)
    y = torch.sign(x) * torch.log1p(mu * x.abs()) / np.log1p(mu)
    return torch.floor((y + 1.0) / 2.0 * mu + 0.5).to(torch.int64)


def dequantize_torch(c: torch.Tensor, channels: int = 256) -> torch.Tensor:
    """Torch twin of :func:`dequantize`: int classes -> float32 audio."""
    import torch

    if c.is_floating_point() or c.dtype == torch.bool:
        raise ValueError(f"mu-law classes must be integers, got dtype {c.dtype}")
    mu = channels - 1
    y = 2.0 * c.to(torch.float64) / mu - 1.0
    return (torch.sign(y) * torch.expm1(y.abs() * np.log1p(mu)) / mu).to(torch.float32)
