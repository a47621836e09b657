"""The F0 excitation input: sinusoids at the running F0 phase, next to the frame features.

A WaveNet conditioned on frame-rate log-F0 must learn an oscillator from data. With
``WaveNetConfig.excitation = H`` > 0 the model is also given, at the sample rate, the sine
and cosine of the first H harmonics of the F0 phase (zero in unvoiced frames), projected
into every layer's gate bias together with the upsampled frame features.

The phase is a running sum over the whole utterance, so no window of frames can compute it
alone. It is split in two:

- :func:`frame_phase` (numpy, once per utterance, float64 sum): the phase at each
  frame's first sample, mod 2 pi. It travels as one extra column of the model's
  conditioning input, after the D features (:func:`with_phase`). The training data and
  the runtime's conditioner append it; any window of frames then carries its own start
  phase, so chunked and streamed conditioning equal the whole utterance exactly.
- :func:`excitation` (torch; the same ops in ``condition.onnx``): within a frame the phase
  advances linearly from that column at the frame's F0, then the harmonics.

F0 comes from the features: ``cfg.f0_feature`` is natural-log Hz normalised with
``(cfg.log_f0_mean, cfg.log_f0_std)``, and ``cfg.vuv_feature`` is the voicing flag (0/1).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from vocoder.config import WaveNetConfig

if TYPE_CHECKING:  # the runtime imports this module without torch
    import torch

TWO_PI = 2.0 * math.pi


F0_NAME, VUV_NAME = "log_f0", "vuv"


def config_fields(spec) -> dict[str, float | int]:
    """The WaveNetConfig fields that locate and de-normalise F0 in features described by
    ``spec`` (a :class:`vocoder.features.spec.FeatureSpec` with "log_f0" and "vuv")."""
    from vocoder.errors import VocoderError

    names = list(spec.names)
    missing = [n for n in (F0_NAME, VUV_NAME) if n not in names]
    if missing:
        raise VocoderError(f"the F0 excitation needs features named {missing} "
                           f"(log-F0 in natural-log Hz and the voicing flag)")
    i = names.index(F0_NAME)
    return {"f0_feature": i, "vuv_feature": names.index(VUV_NAME),
            "log_f0_mean": float(spec.mean[i]), "log_f0_std": float(spec.std[i])}


def log_f0_column(features: np.ndarray, cfg: WaveNetConfig, normalized: bool = True
                  ) -> np.ndarray:
    """Natural-log F0 of every frame (Tf,) float64, from features (Tf, D) that are
    normalised (as the model reads them) or raw (as the user gives them)."""
    col = features[:, cfg.f0_feature].astype(np.float64)
    return col * cfg.log_f0_std + cfg.log_f0_mean if normalized else col


def frame_phase(log_f0: np.ndarray, cfg: WaveNetConfig) -> np.ndarray:
    """Phase of the fundamental at the first sample of each frame, mod 2 pi: (Tf,) float32.

    log_f0 (Tf,): natural-log Hz of a whole utterance (frame 0 has phase 0).
    """
    step = TWO_PI * np.exp(log_f0) * cfg.hop_length / cfg.sample_rate
    phase = np.concatenate([[0.0], np.cumsum(step)[:-1]]) if len(step) else step
    return np.mod(phase, TWO_PI).astype(np.float32)


def append_phase(features: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """features (Tf, D), phase (Tf,) -> the model's conditioning input (Tf, D + 1)."""
    return np.concatenate([features.astype(np.float32, copy=False), phase[:, None]], axis=1)


def with_phase(features: np.ndarray, cfg: WaveNetConfig) -> np.ndarray:
    """The model's conditioning input for a whole utterance of normalised features:
    (Tf, D) -> (Tf, D + 1) with the :func:`frame_phase` column appended; unchanged when
    the model has no excitation."""
    if not cfg.excitation:
        return features
    return append_phase(features, frame_phase(log_f0_column(features, cfg), cfg))


def excitation(inputs: torch.Tensor, cfg: WaveNetConfig) -> torch.Tensor:
    """Sample-rate excitation (B, 2H, Tf * hop): sin of harmonics 1..H, then their cos,
    times the voicing flag.

    inputs (B, Tf, D + 1): normalised features with the frame-phase column last.
    """
    import torch

    hop, H = cfg.hop_length, cfg.excitation
    B, Tf, _ = inputs.shape
    f0 = torch.exp(inputs[..., cfg.f0_feature] * cfg.log_f0_std + cfg.log_f0_mean)  # (B, Tf)
    rate = f0 * (TWO_PI / cfg.sample_rate)  # radians per sample
    n = torch.arange(hop, dtype=inputs.dtype, device=inputs.device)
    phase = inputs[..., -1:] + rate[..., None] * n  # (B, Tf, hop)
    phase = phase.reshape(B, 1, Tf * hop)
    m = torch.arange(1, H + 1, dtype=inputs.dtype, device=inputs.device)[None, :, None]
    voiced = inputs[..., cfg.vuv_feature, None].expand(B, Tf, hop).reshape(B, 1, Tf * hop)
    mp = phase * m  # (B, H, T)
    return torch.cat([torch.sin(mp), torch.cos(mp)], dim=1) * voiced
