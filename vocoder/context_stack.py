"""The context stack (WaveNet paper, section 2.6): a small dilated stack that reads the
past audio one block of P samples at a time and biases the main stack's gates.

Shapes: B batch, T samples, P = ``context_pool`` samples per block, K blocks,
Rc = ``context_channels``, L layers and G gate channels of the main stack.

The main stack's input ``x[t]`` is already the *previous* sample's class, so input block
k is ``x[kP:(k+1)P]``. The context sequence is one *initial* block (every entry the class
of silence, the class generation starts from) followed by the input blocks; its output k
is the bias of sample block k, computed from input blocks ``0..k-1`` only. Each output is
held for the P samples of its block. Causal zero padding in :meth:`ContextStack.forward`
is the zero initial state of :meth:`ContextStack.step`.

Each layer: ``a = W [h(k - d), h(k)] + b``, ``z = tanh(a_t) * sigmoid(a_s)``,
``h <- h + W_res z + b_res``; the block embedding is a learned linear pooling of the P
classes mapped to [-1, 1]; the projection to the main stack's L*G gate biases has no bias
(the main stack's ``gate_bias`` is that).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vocoder.config import WaveNetConfig, context_dilations, context_state_size
from vocoder.mulaw import silence_class


class ContextStack(nn.Module):
    """The block-rate stack of a model with ``context_pool`` > 0."""

    def __init__(self, cfg: WaveNetConfig):
        super().__init__()
        if not cfg.context_pool:
            raise ValueError("ContextStack needs context_pool > 0")
        self.cfg = cfg
        P, Rc = cfg.context_pool, cfg.context_channels
        self.pool = P
        self.dilation_list = context_dilations(cfg)
        self.embed = nn.Linear(P, Rc)
        # Both taps of a layer in one matrix over [h(k - d), h(k)]: (2Rc, 2Rc).
        self.taps = nn.ModuleList(nn.Linear(2 * Rc, 2 * Rc) for _ in self.dilation_list)
        self.residual = nn.ModuleList(nn.Linear(Rc, Rc) for _ in self.dilation_list)
        self.proj = nn.Linear(Rc, cfg.layers * cfg.gate_channels, bias=False)

    def values(self, classes: torch.Tensor) -> torch.Tensor:
        """int64 classes -> floats in [-1, 1], the pooling's input (same shape)."""
        return classes.to(self.embed.weight.dtype) * (2.0 / (self.cfg.quantization_channels
                                                             - 1)) - 1.0

    def initial_block(self, batch: int) -> torch.Tensor:
        """(B, P) int64: the block before the first input block, all silence."""
        return torch.full((batch, self.pool), silence_class(self.cfg.quantization_channels),
                          dtype=torch.int64, device=self.embed.weight.device)

    def blocks(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) int64 inputs -> (B, K, P) int64, K = ceil(T / P): the initial block,
        then the input blocks 0..K-2 (a trailing partial block biases no sample of x)."""
        B, T = x.shape
        K = -(-T // self.pool)
        full = x[:, : (K - 1) * self.pool].reshape(B, K - 1, self.pool)
        return torch.cat([self.initial_block(B)[:, None], full], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) int64 inputs -> (B, K, Rc): the hidden state whose projection is the
        bias of sample block k (K = ceil(T / P)). Position k depends on input blocks
        ``0..k-1`` only."""
        h = self.embed(self.values(self.blocks(x)))  # (B, K, Rc)
        K = h.shape[1]
        for d, taps, res in zip(self.dilation_list, self.taps, self.residual):
            past = F.pad(h[:, : max(0, K - d)], (0, 0, min(d, K), 0))  # causal zeros
            a = taps(torch.cat([past, h], -1))
            zt, zs = a.chunk(2, -1)
            h = h + res(torch.tanh(zt) * torch.sigmoid(zs))
        return h

    def bias(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T) int64 -> (B, T, L*G): every sample's context gate bias."""
        T = x.shape[1]
        return self.proj(self.forward(x)).repeat_interleave(self.pool, 1)[:, :T]

    def step(self, block: torch.Tensor,
             state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One block; a pure function. block (B, P) int64 input classes; state
        (B, sum(d_c), Rc), each layer's last d_c inputs, oldest first (zeros at the
        start). Returns the bias of the next block (B, L*G) and the new state."""
        h = self.embed(self.values(block))  # (B, Rc)
        rows, off = [], 0
        for d, taps, res in zip(self.dilation_list, self.taps, self.residual):
            reg = state[:, off: off + d]  # (B, d, Rc): inputs d .. 1 blocks ago
            rows.extend([reg[:, 1:], h[:, None]])
            a = taps(torch.cat([reg[:, 0], h], -1))
            zt, zs = a.chunk(2, -1)
            h = h + res(torch.tanh(zt) * torch.sigmoid(zs))
            off += d
        return self.proj(h), torch.cat(rows, 1)

    def init_state(self, batch: int) -> torch.Tensor:
        """Zero state (B, sum(d_c), Rc): zeros are the causal padding of forward."""
        p = self.embed.weight
        return torch.zeros(batch, context_state_size(self.cfg), self.cfg.context_channels,
                           dtype=p.dtype, device=p.device)
