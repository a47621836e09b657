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
from vocoder.context_stack import ContextStack
from vocoder.excitation import excitation


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
        if cfg.excitation and min(cfg.f0_feature, cfg.vuv_feature) < 0:
            raise ValueError("a model with an excitation input needs f0_feature and "
                             "vuv_feature (training fills them in from the feature names)")
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
            # Input channels: the upsampled features, then the excitation (sin, cos).
            self.cond_proj = nn.Conv1d(C + 2 * cfg.excitation, L * G, 1, bias=False)
        if cfg.n_speakers:
            # V^T h with h one-hot is a lookup: one row of L*G biases per speaker.
            self.speaker_embed = nn.Embedding(cfg.n_speakers, L * G)
            nn.init.normal_(self.speaker_embed.weight, std=0.1)
        if cfg.gc_channels:
            self.gc_proj = nn.Linear(cfg.gc_channels, L * G, bias=False)
        if cfg.context_pool:
            self.context = ContextStack(cfg)

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
        c = self._frame_cond(n_samples, features, frame_offset).transpose(1, 2)
        return self.cond_proj(c) + bias

    def condition(self, features: torch.Tensor | None = None,
                  speaker: torch.Tensor | None = None, n_samples: int | None = None,
                  gc: torch.Tensor | None = None, batch: int | None = None,
                  frame_offset: int = 0) -> torch.Tensor:
        """Every layer's gate bias for every sample: cond (B, T, L, G).

        features (B, Tf, D) float, already normalised; speaker (B,) int64; gc
        (B, gc_channels) float. T = Tf * hop unless ``n_samples`` is given (needed when
        the model has no local conditioning). B is the batch of ``features``, else of
        ``speaker`` or ``gc``, else ``batch`` (default 1). Sample 0 lies ``frame_offset``
        frames into ``features``.
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
        else:
            given = next((t.shape[0] for t in (speaker, gc) if t is not None), None)
            if given is not None and batch not in (None, given):
                raise ValueError(f"batch={batch} but speaker/gc have batch {given}")
            batch = given or batch or 1
        c = self._cond_channels_first(batch, n_samples, features, speaker, gc, frame_offset)
        return c.reshape(batch, cfg.layers, cfg.gate_channels, n_samples).permute(0, 3, 1, 2)

    # -- training ---------------------------------------------------------------------
    def _frame_cond(self, n_samples: int, features: torch.Tensor | None,
                    frame_offset: int) -> torch.Tensor | None:
        """Upsampled local conditioning (and the excitation), channels last:
        (B, T, C + 2 * excitation), or None without local conditioning."""
        cfg = self.cfg
        if not cfg.cond_channels:
            return None
        D = cfg.cond_input_channels
        if features is None or features.shape[-1] != D:
            got = "none" if features is None else f"{features.shape[-1]} columns"
            raise ValueError(f"this model needs features (B, Tf, {D}), got {got}"
                             + (" (features + the frame phase column: see "
                                "vocoder.excitation.with_phase)" if cfg.excitation else ""))
        c = features[..., :cfg.cond_channels].transpose(1, 2)  # (B, D, Tf)
        if cfg.cond_hidden:
            c = torch.tanh(self.cond_in(c))
        c = self.upsample(c)  # (B, C, Tf*hop)
        if cfg.excitation:
            c = torch.cat([c, excitation(features, cfg)], dim=1)
        start = frame_offset * cfg.hop_length
        if c.shape[-1] < start + n_samples:
            raise ValueError(f"features cover {c.shape[-1] - start} samples after the "
                             f"offset, {n_samples} requested")
        return c[..., start:start + n_samples].transpose(1, 2)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None,
                speaker: torch.Tensor | None = None,
                gc: torch.Tensor | None = None, frame_offset: int = 0,
                keep: int | None = None, channels_last: bool = False) -> torch.Tensor:
        """Teacher-forced parallel pass: :meth:`head` of :meth:`stack`.

        x (B, T) int64: the class of the *previous* sample at each position. With a
        context stack, x must begin at the utterance start or at a block boundary (a
        multiple of ``context_pool`` samples into it); in the second case the first
        :func:`~vocoder.config.context_receptive_field` blocks of x are context only
        (their context bias assumes the utterance starts there).
        features (B, Tf, D) with (Tf - frame_offset) * hop >= T; speaker (B,);
        gc (B, gc_channels). Returns the logits of the last ``keep`` positions (all T by
        default): (B, A, keep), or (B, keep, A) with ``channels_last``.

        Written for training speed on the CPU, and equal to :meth:`step` run over the
        sequence: activations are channels-last (every 1x1 conv is one GEMM over B*T
        rows), each layer computes only the positions that the kept outputs depend on,
        the kernel-2 dilated conv and the layer's conditioning projections are one GEMM
        over ``[h(t - d), h(t), c(t), k(t)]`` (k: the context stack's hidden state of the
        sample's block), and the skip convs of all layers are one GEMM.
        Nothing slices a tensor that spans all layers, whose backward would zero-fill the
        whole of it once per layer.
        """
        logits = self.head(self.stack(x, features, speaker, gc, frame_offset, keep))
        return logits if channels_last else logits.transpose(1, 2)

    def stack(self, x: torch.Tensor, features: torch.Tensor | None = None,
              speaker: torch.Tensor | None = None, gc: torch.Tensor | None = None,
              frame_offset: int = 0, keep: int | None = None) -> torch.Tensor:
        """The dilated stack of :meth:`forward` up to the sum of the skip connections
        (before the head's first ReLU): (B, keep, S), channels last.

        Arguments as for :meth:`forward`; position t depends on ``x[..t]`` only.
        """
        cfg = self.cfg
        B, T = x.shape
        keep = T if keep is None else keep
        if not 0 < keep <= T:
            raise ValueError(f"keep must be in 1..{T}, got {keep}")
        start = T - keep
        G, L = cfg.gate_channels, cfg.layers
        c = self._frame_cond(T, features, frame_offset)  # (B, T, C) or None
        bias = self._global_bias(B, speaker, gc).reshape(B, 1, L, G).unbind(2)
        cond_w = self.cond_proj.weight[:, :, 0].reshape(L, G, -1).unbind(0) \
            if c is not None else None
        k = ctx_w = None
        if cfg.context_pool:  # the context stack's hidden state, held for each block
            k = self.context(x).repeat_interleave(cfg.context_pool, 1)[:, :T]  # (B, T, Rc)
            ctx_w = self.context.proj.weight.reshape(L, G, -1).unbind(0)
        # How far back of the kept positions layer i's output is still needed.
        later = [sum(self.dilation_list[i + 1:]) for i in range(L)]
        h = self.embed(x)  # (B, T, R), covering positions [o, T)
        o = 0
        kept_z = []
        for i, d in enumerate(self.dilation_list):
            n = max(0, start - later[i])  # first position this layer computes
            if n - d >= o:
                past = h[:, n - d - o: T - d - o]
            else:  # only at the sequence start (o == 0): causal zero padding
                past = F.pad(h[:, : max(0, T - d)], (0, 0, min(d - n, T - n), 0))
            w = self.dilated[i].weight  # (G, R, 2): tap 0 sees t - d, tap 1 sees t
            parts, weights = [past, h[:, n - o:]], [w[:, :, 0], w[:, :, 1]]
            if c is not None:
                parts.append(c[:, n:])
                weights.append(cond_w[i])
            if k is not None:
                parts.append(k[:, n:])
                weights.append(ctx_w[i])
            a = F.linear(torch.cat(parts, -1), torch.cat(weights, 1)) + bias[i]
            zt, zs = a.chunk(2, -1)
            z = torch.tanh(zt) * torch.sigmoid(zs)  # (B, T - n, G/2)
            kept_z.append(z[:, start - n:])
            if i < L - 1:
                res = self.residual[i]
                h = h[:, n - o:] + F.linear(z, res.weight[:, :, 0], res.bias)
                o = n
        skip_w = torch.cat([s.weight[:, :, 0] for s in self.skip], 1)  # (S, L*G/2)
        # A sum of the biases whose backward gives each its own gradient tensor: with
        # stack().sum() they would all alias one expanded tensor, which DDP's in-place
        # averaging then divides once per alias.
        ones = torch.ones(1, L, dtype=skip_w.dtype, device=skip_w.device)
        skip_b = (ones @ torch.stack([s.bias for s in self.skip]))[0]
        return F.linear(torch.cat(kept_z, -1), skip_w, skip_b)  # (B, keep, S)

    def head(self, skip: torch.Tensor) -> torch.Tensor:
        """Output head on summed skips: skip (B, T, S) -> logits (B, T, A), channels last."""
        out = F.relu(F.linear(F.relu(skip), self.head1.weight[:, :, 0], self.head1.bias))
        return F.linear(out, self.head2.weight[:, :, 0], self.head2.bias)

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

    def context_step(self, block: torch.Tensor,
                     state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The context stack's step, a pure function: block (B, P) int64 input classes
        ``x[kP:(k+1)P]``, state (B, sum(d_c), Rc) -> the gate bias of block k + 1
        (B, L*G), to add to :meth:`condition`'s, and the new state. Block 0's bias is
        this step on :meth:`ContextStack.initial_block` from :meth:`init_context_state`."""
        return self._context().step(block, state)

    def init_context_state(self, batch: int) -> torch.Tensor:
        """Zero context state (B, sum(d_c), Rc)."""
        return self._context().init_state(batch)

    def _context(self) -> ContextStack:
        if not self.cfg.context_pool:
            raise ValueError("this model has no context stack (context_pool = 0)")
        return self.context

    def init_ring(self, batch: int) -> torch.Tensor:
        """Zeroed ring buffers (B, sum(d_l), R): zeros are the causal padding of forward."""
        p = self.embed.weight
        return torch.zeros(batch, sum(self.dilation_list), self.cfg.residual_channels,
                           dtype=p.dtype, device=p.device)

    @property
    def dilations(self) -> list[int]:
        return list(self.dilation_list)
