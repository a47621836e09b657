"""The WaveNet in torch: a parallel teacher-forced ``forward`` for training, and a pure
``step`` for generation that shares its weights.

Shapes: B batch, T samples, Tf frames, D feature dims, L layers, R residual channels,
G gate channels (2R by default), S skip channels, A = quantization channels (256).

The input is the previous sample's mu-law class through an embedding, which is a 1x1
convolution on the one-hot. Because ``x[t]`` is already the *previous* sample, that 1x1
input convolution is causal and has no state of its own: the step needs no tap for it,
and ``past`` holds only the L residual layers' inputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.config import WaveNetConfig, dilations


def _triangle_kernel(scale: int) -> torch.Tensor:
    # Linear interpolation as a transposed conv (kernel 2s, stride s): overlapping tails
    # sum to one, so the untrained upsampler already interpolates smoothly.
    q = torch.arange(2 * scale, dtype=torch.float32)
    return torch.where(q < scale, (q + 0.5) / scale, (2 * scale - q - 0.5) / scale)


class Upsampler(nn.Module):
    """Learned upsampling of frame features to the sample rate (the paper's transposed
    convolutions). Each level is a ConvTranspose1d with kernel 2s and stride s, cropped
    to exactly s times its input length, so every output depends on at most two
    neighbouring inputs: chunked conditioning needs only a few frames of context
    (:func:`vocoder.config.cond_context_frames`).
    """

    def __init__(self, channels: int, scales: tuple[int, ...]):
        super().__init__()
        self.scales = tuple(scales)
        self.convs = nn.ModuleList(
            nn.ConvTranspose1d(channels, channels, 2 * s, stride=s, bias=True) for s in scales
        )
        with torch.no_grad():
            for conv, s in zip(self.convs, self.scales):
                conv.weight.mul_(0.1)
                conv.weight += torch.eye(channels)[:, :, None] * _triangle_kernel(s)
                conv.bias.zero_()

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        """c (B, D, Tf) -> (B, D, Tf * hop)."""
        for conv, s in zip(self.convs, self.scales):
            n = c.shape[-1]
            c = conv(c)[..., s // 2: s // 2 + n * s]
        return c


class WaveNet(nn.Module):
    """Dilated causal convolutions with gated units, residual and skip connections,
    a 256-way softmax over mu-law classes, and local + global conditioning."""

    def __init__(self, cfg: WaveNetConfig):
        super().__init__()
        self.cfg = cfg
        R, G, S, A, L = (cfg.residual_channels, cfg.gate_channels, cfg.skip_channels,
                         cfg.quantization_channels, cfg.layers)
        self.dilation_list = dilations(cfg)
        self.embed = nn.Embedding(A, R)
        # The dilated convs have no bias: it is part of the conditioning bias (gate_bias),
        # so that cond_t alone carries every additive term of the gate pre-activation.
        self.dilated = nn.ModuleList(
            nn.Conv1d(R, G, 2, dilation=d, bias=False) for d in self.dilation_list
        )
        self.gate_bias = nn.Parameter(torch.zeros(L, G))
        # The last layer's residual output would feed nothing, so it has no residual conv.
        self.residual = nn.ModuleList(nn.Conv1d(G // 2, R, 1) for _ in range(L - 1))
        self.skip = nn.ModuleList(nn.Conv1d(G // 2, S, 1) for _ in range(L))
        self.head1 = nn.Conv1d(S, S, 1)
        self.head2 = nn.Conv1d(S, A, 1)
        if cfg.cond_channels:
            C = cfg.cond_hidden or cfg.cond_channels
            if cfg.cond_hidden:
                self.cond_in = nn.Conv1d(cfg.cond_channels, C, 3, padding=1)
            self.upsample = Upsampler(C, cfg.upsample_scales)
            self.cond_proj = nn.Conv1d(C, L * G, 1, bias=False)
        if cfg.n_speakers:
            # V^T h with h one-hot is a lookup: one row of L*G biases per speaker.
            self.speaker_embed = nn.Embedding(cfg.n_speakers, L * G)
            nn.init.normal_(self.speaker_embed.weight, std=0.1)
        if cfg.gc_channels:
            self.gc_proj = nn.Linear(cfg.gc_channels, L * G, bias=False)

    # -- conditioning -----------------------------------------------------------------
    def _global_bias(self, batch: int, speaker: torch.Tensor | None,
                     gc: torch.Tensor | None) -> torch.Tensor:
        """(B, L*G): gate bias plus global conditioning."""
        cfg = self.cfg
        bias = self.gate_bias.reshape(1, -1).expand(batch, -1)
        if cfg.n_speakers:
            if speaker is None:
                raise ValueError(f"this model has {cfg.n_speakers} speakers: pass speaker (B,)")
            bias = bias + self.speaker_embed(speaker.reshape(batch))
        if cfg.gc_channels:
            if gc is None:
                raise ValueError(f"this model takes a global vector gc (B, {cfg.gc_channels})")
            bias = bias + self.gc_proj(gc.reshape(batch, cfg.gc_channels))
        return bias

    def _cond_channels_first(self, batch: int, n_samples: int,
                             features: torch.Tensor | None, speaker: torch.Tensor | None,
                             gc: torch.Tensor | None, frame_offset: int = 0) -> torch.Tensor:
        """(B, L*G, T) gate bias for every layer and sample (may be a broadcast view).

        Sample 0 lies ``frame_offset`` frames into ``features`` (context for the
        upsampler, so a crop conditions exactly as the whole utterance would).
        """
        bias = self._global_bias(batch, speaker, gc)[:, :, None]
        if not self.cfg.cond_channels:
            return bias.expand(-1, -1, n_samples)
        if features is None:
            raise ValueError(f"this model needs features (B, Tf, {self.cfg.cond_channels})")
        c = features.transpose(1, 2)  # (B, D, Tf)
        if self.cfg.cond_hidden:
            c = torch.tanh(self.cond_in(c))  # (B, C, Tf)
        c = self.upsample(c)  # (B, C, Tf*hop)
        start = frame_offset * self.cfg.hop_length
        if c.shape[-1] < start + n_samples:
            raise ValueError(f"features cover {c.shape[-1] - start} samples after the "
                             f"offset, {n_samples} requested")
        return self.cond_proj(c[..., start:start + n_samples]) + bias

    def condition(self, features: torch.Tensor | None = None,
                  speaker: torch.Tensor | None = None, n_samples: int | None = None,
                  gc: torch.Tensor | None = None, batch: int = 1,
                  frame_offset: int = 0) -> torch.Tensor:
        """Every layer's gate bias for every sample: cond (B, T, L, G).

        features (B, Tf, D) float, already normalised; speaker (B,) int64; gc
        (B, gc_channels) float. T = Tf * hop unless ``n_samples`` is given (needed, and
        ``batch`` too, when the model has no local conditioning). Sample 0 lies
        ``frame_offset`` frames into ``features``.
        """
        cfg = self.cfg
        if cfg.cond_channels:
            if features is None:
                raise ValueError(f"this model needs features (B, Tf, {cfg.cond_channels})")
            batch = features.shape[0]
            if n_samples is None:
                n_samples = (features.shape[1] - frame_offset) * cfg.hop_length
        elif n_samples is None:
            raise ValueError("an unconditional model needs n_samples")
        c = self._cond_channels_first(batch, n_samples, features, speaker, gc, frame_offset)
        return c.reshape(batch, cfg.layers, cfg.gate_channels, n_samples).permute(0, 3, 1, 2)

    # -- training ---------------------------------------------------------------------
    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None,
                speaker: torch.Tensor | None = None,
                gc: torch.Tensor | None = None, frame_offset: int = 0) -> torch.Tensor:
        """Teacher-forced parallel pass.

        x (B, T) int64: the class of the *previous* sample at each position.
        features (B, Tf, D) with (Tf - frame_offset) * hop >= T; speaker (B,);
        gc (B, gc_channels). Returns logits (B, A, T) for the sample at each position.
        """
        cfg = self.cfg
        B, T = x.shape
        cond = self._cond_channels_first(B, T, features, speaker, gc, frame_offset)
        G = cfg.gate_channels
        h = self.embed(x).transpose(1, 2)  # (B, R, T)
        skip = 0
        for i, (conv, d) in enumerate(zip(self.dilated, self.dilation_list)):
            a = conv(F.pad(h, (d, 0))) + cond[:, i * G:(i + 1) * G]
            z = torch.tanh(a[:, : G // 2]) * torch.sigmoid(a[:, G // 2:])
            skip = skip + self.skip[i](z)
            if i < cfg.layers - 1:
                h = h + self.residual[i](z)
        return self.head2(F.relu(self.head1(F.relu(skip))))

    # -- generation -------------------------------------------------------------------
    def step(self, x: torch.Tensor, cond_t: torch.Tensor,
             past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One autoregressive step; a pure function, no hidden state.

        x (B,) int64 previous class; cond_t (B, L, G) this step's gate biases (from
        :meth:`condition`); past (B, L, R) each layer's input d_l steps ago.
        Returns logits (B, A) and present (B, L, R), each layer's input at this step,
        which the caller stores for step t + d_l.
        """
        G = self.cfg.gate_channels
        h = self.embed(x)  # (B, R)
        presents = []
        skip = 0
        for i, conv in enumerate(self.dilated):
            presents.append(h)
            w = conv.weight  # (G, R, 2): tap 0 sees t - d, tap 1 sees t
            a = past[:, i] @ w[:, :, 0].T + h @ w[:, :, 1].T + cond_t[:, i]
            z = torch.tanh(a[:, : G // 2]) * torch.sigmoid(a[:, G // 2:])
            skip = skip + F.linear(z, self.skip[i].weight[:, :, 0], self.skip[i].bias)
            if i < self.cfg.layers - 1:
                h = h + F.linear(z, self.residual[i].weight[:, :, 0], self.residual[i].bias)
        out = F.relu(F.linear(F.relu(skip), self.head1.weight[:, :, 0], self.head1.bias))
        logits = F.linear(out, self.head2.weight[:, :, 0], self.head2.bias)
        return logits, torch.stack(presents, dim=1)

    def init_ring(self, batch: int) -> torch.Tensor:
        """Zeroed ring buffers (B, sum(d_l), R): zeros are the causal padding of forward."""
        p = self.embed.weight
        return torch.zeros(batch, sum(self.dilation_list), self.cfg.residual_channels,
                           dtype=p.dtype, device=p.device)

    @property
    def dilations(self) -> list[int]:
        return list(self.dilation_list)
