"""The speech-recognition WaveNet in torch: the vocoder's dilated stack on raw audio, mean
pooling to frames, non-causal frame convolutions, and two outputs.

Shapes: B batch, T samples, W the stack positions kept (a whole number of frames), Tf
frames (W / F, F = ``frame_hop``), S skip channels, C frame channels, P phones, A mu-law
classes.

The stack is :class:`vocoder.model.WaveNet` without conditioning: ``x[t]`` is the class
of the *previous* sample, so the stack's output at t has seen the audio up to t - 1 and
its own head predicts sample t (the auxiliary loss). Frame j pools the stack outputs of
positions ``[j F, (j + 1) F)``; the non-causal convolutions then look ``frame_context``
frames to either side, zero-padded at the ends of the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.asr.config import ASRConfig
from vocoder.model import WaveNet


class ASRWaveNet(nn.Module):
    """Frame-wise phone classifier with a next-sample prediction head."""

    def __init__(self, cfg: ASRConfig):
        super().__init__()
        self.cfg = cfg
        self.wavenet = WaveNet(cfg.stack_config())
        channels = [cfg.skip_channels] + [cfg.frame_channels] * cfg.frame_layers
        self.frame_convs = nn.ModuleList(
            nn.Conv1d(a, b, cfg.frame_kernel, padding=cfg.frame_kernel // 2)
            for a, b in zip(channels[:-1], channels[1:]))
        self.frame_out = nn.Conv1d(channels[-1], cfg.n_phones, 1)

    def stack(self, x: torch.Tensor, keep: int | None = None) -> torch.Tensor:
        """x (B, T) int64 previous-sample classes -> summed skips of the last ``keep``
        positions (all T by default): (B, keep, S). Causal: position t sees ``x[..t]``."""
        return self.wavenet.stack(x, keep=keep)

    def pool(self, skip: torch.Tensor) -> torch.Tensor:
        """Mean of ReLU(skip) over each frame: (B, W, S) -> (B, S, W / F)."""
        B, W, S = skip.shape
        hop = self.cfg.frame_hop
        if W % hop:
            raise ValueError(f"pooling needs a whole number of {hop}-sample frames, got {W}")
        return F.relu(skip).reshape(B, W // hop, hop, S).mean(2).transpose(1, 2)

    def classify(self, pooled: torch.Tensor) -> torch.Tensor:
        """Frame logits: pooled (B, S, Tf) -> (B, Tf, P)."""
        h = pooled
        for conv in self.frame_convs:
            h = F.relu(conv(h))
        return self.frame_out(h).transpose(1, 2)

    def forward(self, x: torch.Tensor, keep: int | None = None,
                samples: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T) int64 previous-sample classes; the last ``keep`` positions (a whole
        number of frames; all T by default) are pooled into frames.

        Returns frame logits (B, keep / F, P) and, when ``samples``, the next-sample
        logits of the kept positions (B, keep, A); else None (and the head is skipped).
        """
        skip = self.stack(x, keep)
        frames = self.classify(self.pool(skip))
        return frames, (self.wavenet.head(skip) if samples else None)
