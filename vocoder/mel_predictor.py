"""Mel predictor: the log mels a linguistic-feature bundle's audio should have.

The mel post-filter (:mod:`vocoder.postfilter`) pulls generated audio toward given mels.
A mel-conditioned bundle is handed them; a bundle conditioned on linguistic features and
F0 is not, so it can carry this small frame-rate network, trained on the same corpus,
that predicts them from its own frame features (and speaker): a stack of 1-D
convolutions over the normalised features, ReLU between them, one log-mel frame out per
frame in, at the bundle's hop, in the analysis :attr:`MelPredictorConfig.mel`.

It is a target for the post-filter, not part of the WaveNet: the step contract and the
exported graphs do not change, and synthesis runs it in numpy (:func:`predict`), so the
ONNX Runtime and numba backends still run without torch. Training
(:mod:`vocoder.train.mel_predictor`) builds the same network in torch
(:func:`torch_module`), with the same tensor names.

Weights (``mel_predictor.safetensors`` in the bundle), for layer i of ``layers``:
``convs.{i}.weight`` (C_out, C_in, kernel) and ``convs.{i}.bias`` (C_out,), C_in of the
first layer being the feature dimension plus ``speaker_dim``; ``speaker.weight``
(n_speakers, speaker_dim) when the bundle has speakers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.mel import MelConfig

WEIGHTS_FILE = "mel_predictor.safetensors"


@dataclass(frozen=True)
class MelPredictorConfig:
    """The predictor's architecture and output analysis. ``mean``/``std``: per band, the
    training mels' statistics; the network predicts normalised mels."""

    mel: MelConfig
    in_channels: int
    n_speakers: int = 0
    speaker_dim: int = 16
    hidden: int = 256
    layers: int = 4
    kernel: int = 5
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        ok = (self.in_channels >= 1 and self.n_speakers >= 0 and self.speaker_dim >= 1
              and self.hidden >= 1 and self.layers >= 1 and self.kernel >= 1
              and self.kernel % 2 == 1)
        if not ok:
            raise VocoderError(f"mel predictor config: sizes must be >= 1 and the kernel "
                               f"odd, got {self}")
        for name in ("mean", "std"):
            if len(getattr(self, name)) not in (0, self.mel.n_mels):
                raise VocoderError(f"mel predictor config: {name} needs one value per "
                                   f"band ({self.mel.n_mels})")

    @property
    def spk_dim(self) -> int:
        return self.speaker_dim if self.n_speakers else 0

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Tensor name -> shape of every weight."""
        out: dict[str, tuple[int, ...]] = {}
        c_in = self.in_channels + self.spk_dim
        for i in range(self.layers):
            c_out = self.mel.n_mels if i == self.layers - 1 else self.hidden
            out[f"convs.{i}.weight"] = (c_out, c_in, self.kernel)
            out[f"convs.{i}.bias"] = (c_out,)
            c_in = c_out
        if self.n_speakers:
            out["speaker.weight"] = (self.n_speakers, self.speaker_dim)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"mel": self.mel.to_dict(), "in_channels": self.in_channels,
                "n_speakers": self.n_speakers, "speaker_dim": self.speaker_dim,
                "hidden": self.hidden, "layers": self.layers, "kernel": self.kernel,
                "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, d: Any) -> MelPredictorConfig:
        if not isinstance(d, dict) or not isinstance(d.get("mel"), dict):
            raise VocoderError("mel predictor config: expected an object with a 'mel' "
                               "analysis")
        known = {"in_channels", "n_speakers", "speaker_dim", "hidden", "layers", "kernel"}
        try:
            return cls(MelConfig.from_dict(d["mel"]),
                       **{k: int(d[k]) for k in known if k in d},
                       mean=tuple(float(v) for v in d.get("mean", ())),
                       std=tuple(float(v) for v in d.get("std", ())))
        except (TypeError, ValueError, KeyError) as e:
            raise VocoderError(f"mel predictor config: bad field ({e})") from None


def check_weights(cfg: MelPredictorConfig, weights: dict[str, np.ndarray], where) -> None:
    """Every tensor present, float32, with its shape; a VocoderError naming ``where``."""
    expected = cfg.shapes()
    if set(weights) != set(expected):
        raise VocoderError(f"{where}: tensors do not match the mel predictor config "
                           f"(missing {sorted(set(expected) - set(weights))[:5]}, "
                           f"unexpected {sorted(set(weights) - set(expected))[:5]})")
    for name, shape in expected.items():
        if tuple(weights[name].shape) != shape or weights[name].dtype != np.float32:
            raise VocoderError(f"{where}: tensor {name!r} is {weights[name].dtype} "
                               f"{tuple(weights[name].shape)}, the config needs float32 "
                               f"{shape}")


def _conv(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Same-padded 1-D convolution: x (T, C_in), w (C_out, C_in, K) -> (T, C_out)."""
    k = w.shape[2]
    pad = np.pad(x, ((k // 2, k // 2), (0, 0)))
    cols = np.lib.stride_tricks.sliding_window_view(pad, k, axis=0)  # (T, C_in, K)
    return cols.reshape(len(x), -1) @ w.reshape(len(w), -1).T + b


def predict(cfg: MelPredictorConfig, weights: dict[str, np.ndarray], features: np.ndarray,
            speaker: int | None = None) -> np.ndarray:
    """Normalised frame features (T, in_channels) -> raw log mels (T, n_mels), float64."""
    x = np.asarray(features, dtype=np.float32)
    if cfg.n_speakers:
        e = weights["speaker.weight"][0 if speaker is None else int(speaker)]
        x = np.concatenate([x, np.broadcast_to(e, (len(x), len(e)))], axis=1)
    for i in range(cfg.layers):
        x = _conv(x, weights[f"convs.{i}.weight"], weights[f"convs.{i}.bias"])
        if i < cfg.layers - 1:
            x = np.maximum(x, 0.0)
    return x.astype(np.float64) * np.asarray(cfg.std) + np.asarray(cfg.mean)


def torch_module(cfg: MelPredictorConfig):
    """The same network in torch, for training: ``module(features (B, T, D), speaker
    (B,) or None) -> normalised mels (B, T, n_mels)``; its ``state_dict`` names are the
    weights file's."""
    import torch

    class MelPredictor(torch.nn.Module):
        def __init__(self):
            super().__init__()
            shapes = cfg.shapes()
            self.convs = torch.nn.ModuleList(
                torch.nn.Conv1d(shapes[f"convs.{i}.weight"][1],
                                shapes[f"convs.{i}.weight"][0], cfg.kernel,
                                padding=cfg.kernel // 2) for i in range(cfg.layers))
            if cfg.n_speakers:
                self.speaker = torch.nn.Embedding(cfg.n_speakers, cfg.speaker_dim)

        def forward(self, features, speaker=None):
            x = features.transpose(1, 2)
            if cfg.n_speakers:
                ids = speaker if speaker is not None else torch.zeros(
                    len(features), dtype=torch.long)
                e = self.speaker(ids)[:, :, None].expand(-1, -1, x.shape[2])
                x = torch.cat([x, e], dim=1)
            for i, conv in enumerate(self.convs):
                x = conv(x)
                if i < cfg.layers - 1:
                    x = torch.relu(x)
            return x.transpose(1, 2)

    return MelPredictor()
