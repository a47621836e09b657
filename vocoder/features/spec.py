"""What the model's frame features are: names, hop, and the normalisation it was trained with.

Kept free of torch and of the feature extractors, so the runtime can read it (the mel
analysis's parameters, :class:`~vocoder.features.mel.MelConfig`, import no extractor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.mel import MelConfig


@dataclass(frozen=True)
class FeatureSpec:
    """Frame features ``(Tf, D)`` at ``hop_length`` samples per frame.

    ``mean``/``std`` are computed on the training split; binary dimensions (one-hots,
    voicing) keep mean 0 and std 1 so normalisation leaves them alone.

    ``mel``: for a mel-conditioned model, the analysis its first ``mel.n_mels`` features
    come from (raw log mels, before this spec's normalisation); any further columns are
    ``log_f0`` and ``vuv``. None for other features (and in bundles written before mels).
    """

    names: tuple[str, ...]
    hop_length: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    binary: tuple[bool, ...] = ()
    mel: MelConfig | None = None

    def __post_init__(self) -> None:
        # Plain Python values (numpy scalars do not serialise to JSON).
        object.__setattr__(self, "names", tuple(str(n) for n in self.names))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))
        object.__setattr__(self, "binary", tuple(bool(v) for v in self.binary))
        d = len(self.names)
        if not self.binary:
            object.__setattr__(self, "binary", (False,) * d)
        if not (len(self.mean) == len(self.std) == len(self.binary) == d):
            raise VocoderError(
                f"feature spec: names ({d}), mean ({len(self.mean)}), std ({len(self.std)}) "
                f"and binary ({len(self.binary)}) must have the same length")
        if any(not (s > 0) for s in self.std):
            raise VocoderError("feature spec: every std must be > 0")
        if self.mel is not None:
            if self.mel.hop_length != self.hop_length:
                raise VocoderError(f"feature spec: hop {self.hop_length} but its mel "
                                   f"analysis has hop {self.mel.hop_length}")
            if self.mel.n_mels > d:
                raise VocoderError(f"feature spec: {d} features cannot hold "
                                   f"{self.mel.n_mels} mel bands")

    @property
    def dim(self) -> int:
        return len(self.names)

    @classmethod
    def identity(cls, dim: int, hop_length: int) -> FeatureSpec:
        """Unnamed features with no normalisation (random-weight bundles, tests)."""
        return cls(tuple(f"f{i}" for i in range(dim)), hop_length, (0.0,) * dim, (1.0,) * dim)

    @classmethod
    def fit(cls, names: list[str], hop_length: int, frames: list[np.ndarray],
            binary: list[bool] | None = None, mel: MelConfig | None = None) -> FeatureSpec:
        """Mean/std over all frames of ``frames`` (each (Tf, D)); binary dims untouched.
        ``mel``: the analysis of mel features (stored with the spec)."""
        d = len(names)
        binary = list(binary) if binary is not None else [False] * d
        n, s, ss = 0, np.zeros(d), np.zeros(d)
        for f in frames:
            f = np.asarray(f, dtype=np.float64)
            n += f.shape[0]
            s += f.sum(0)
            ss += (f * f).sum(0)
        if n == 0:
            raise VocoderError("cannot fit feature statistics on zero frames")
        mean = s / n
        std = np.sqrt(np.maximum(ss / n - mean * mean, 0.0))
        std = np.where(std < 1e-5, 1.0, std)  # constant dims: centre only
        mean = np.where(binary, 0.0, mean)
        std = np.where(binary, 1.0, std)
        return cls(tuple(names), hop_length, tuple(map(float, mean)), tuple(map(float, std)),
                   tuple(bool(b) for b in binary), mel)

    def matches(self, other: FeatureSpec, tolerance: float = 1e-2) -> bool:
        """Same features, hop, mel analysis and binary dims, and statistics within
        ``tolerance``.

        Means may differ by ``tolerance`` standard deviations and stds by that ratio: a
        corpus rebuilt on another machine can differ in the last digits of its F0
        analysis, which is the same data for training purposes.
        """
        if (self.names, self.hop_length, self.binary, self.mel) != \
                (other.names, other.hop_length, other.binary, other.mel):
            return False
        m0, m1 = np.asarray(self.mean), np.asarray(other.mean)
        s0, s1 = np.asarray(self.std), np.asarray(other.std)
        return bool(np.all(np.abs(m0 - m1) <= tolerance * s0)
                    and np.all(np.abs(s1 / s0 - 1.0) <= tolerance))

    def normalize(self, features: np.ndarray) -> np.ndarray:
        """(..., D) raw features -> float32 normalised features."""
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        return ((np.asarray(features, dtype=np.float32) - mean) / std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        d = {"names": list(self.names), "dim": self.dim, "hop_length": self.hop_length,
             "mean": list(self.mean), "std": list(self.std), "binary": list(self.binary)}
        if self.mel is not None:  # absent otherwise, so older specs' documents stay as they were
            d["mel"] = self.mel.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        mel = None if d.get("mel") is None else MelConfig.from_dict(d["mel"])
        try:
            spec = cls(tuple(d["names"]), int(d["hop_length"]), tuple(d["mean"]),
                       tuple(d["std"]), tuple(d.get("binary", ())), mel)
        except (KeyError, TypeError) as e:
            raise VocoderError(f"feature spec is missing or has a bad field: {e}") from None
        if "dim" in d and d["dim"] != spec.dim:
            raise VocoderError(f"feature spec says dim {d['dim']} but names {spec.dim} features")
        return spec
