"""The two historical ways of generating with a WaveNet, implemented here so the
benchmark can measure them on the same bundle and in the same run as our backends.

* :class:`NaiveWaveNet`: the original generation of van den Oord et al. (2016): for
  every new sample, run the parallel (training) convolution stack over the whole
  receptive field again and keep the last position's logits. O(rf) work per sample.
* :class:`QueueWaveNet`: the Fast WaveNet queue algorithm (Paine et al., 2016) in eager
  torch, written the way popular vocoder repositories generate (r9y9/wavenet_vocoder's
  ``incremental_forward``): every dilated conv keeps its own input buffer of d+1 rows,
  shifted by one row per step with a copy, and the conv is a ``F.linear`` over the
  taps ``buffer[:, ::d]``. O(1) work per sample, but one small torch op after another.

Both take the bundle's torch :class:`~vocoder.model.WaveNet` and a precomputed
conditioning tensor ``cond (T, L, G)`` (from ``model.condition``), sample with the same
inverse-CDF method and counter-based uniforms as every backend, and give the model's own
logits under teacher forcing (``tests/bench/test_baselines.py``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vocoder.config import receptive_field
from vocoder.mulaw import silence_class
from vocoder.runtime.noise import uniforms
from vocoder.runtime.sampling import sample


def forward_from_cond(model, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
    """The model's parallel ``forward`` with the conditioning already computed.

    x (B, T) int64 previous classes; cond (B, T, L, G) gate biases. Returns logits
    (B, A, T). Same layers and order of operations as ``WaveNet.forward``.
    """
    cfg = model.cfg
    G = cfg.gate_channels
    h = model.embed(x).transpose(1, 2)  # (B, R, T)
    skip = 0
    for i, (conv, d) in enumerate(zip(model.dilated, model.dilation_list)):
        a = conv(F.pad(h, (d, 0))) + cond[:, :, i].transpose(1, 2)
        z = torch.tanh(a[:, : G // 2]) * torch.sigmoid(a[:, G // 2:])
        skip = skip + model.skip[i](z)
        if i < cfg.layers - 1:
            h = h + model.residual[i](z)
    return model.head2(F.relu(model.head1(F.relu(skip))))


class NaiveWaveNet:
    """Original generation: the whole receptive field through ``forward`` per sample."""

    name = "naive"

    def __init__(self, model):
        self.model = model.eval()
        self.cfg = model.cfg
        self.rf = receptive_field(self.cfg)

    def _last_logits(self, window: torch.Tensor, cond_window: torch.Tensor) -> torch.Tensor:
        # Positions before the window start are zero-padded by forward, which is exactly
        # the model's own causal padding while t < rf, and outside the receptive field after.
        return forward_from_cond(self.model, window[None], cond_window[None])[0, :, -1]

    @torch.no_grad()
    def teacher_force(self, x: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """x (T,) int64 previous classes, cond (T, L, G) -> logits (T, A) float32."""
        xt, ct = torch.from_numpy(np.asarray(x, np.int64)), torch.from_numpy(cond)
        out = []
        for t in range(len(xt)):
            lo = max(0, t + 1 - self.rf)
            out.append(self._last_logits(xt[lo:t + 1], ct[lo:t + 1]).numpy())
        return np.stack(out)

    @torch.no_grad()
    def generate(self, cond: np.ndarray, seed: int = 0, temperature: float = 1.0,
                 step_times: list | None = None,
                 history: np.ndarray | None = None) -> np.ndarray:
        """cond (T, L, G) -> classes (T - H,) int64 (noise stream 0, like ``synthesize``).

        history: (H,) int64 classes of the samples before the first generated one (the
        first one's input is the last of them; cond covers history and generated samples).
        A history of >= rf samples makes every step recompute the full receptive field,
        its steady-state cost. ``step_times``, if given, receives each sample's seconds.
        """
        import time

        T = cond.shape[0]
        H = 0 if history is None else len(history)
        u = uniforms(seed, [0], 0, T)
        ct = torch.from_numpy(cond)
        x = torch.empty(T, dtype=torch.int64)
        prev = silence_class(self.cfg.quantization_channels)
        if H:
            x[0] = prev
            x[1:H] = torch.from_numpy(np.asarray(history[:-1], np.int64))
            prev = int(history[-1])
        out = np.empty(T - H, np.int64)
        for t in range(H, T):
            t0 = time.perf_counter()
            x[t] = prev
            lo = max(0, t + 1 - self.rf)
            logits = self._last_logits(x[lo:t + 1], ct[lo:t + 1]).numpy()
            prev = int(sample(logits[None], u[:, t], temperature)[0])
            out[t - H] = prev
            if step_times is not None:
                step_times.append(time.perf_counter() - t0)
        return out


class QueueWaveNet:
    """Fast WaveNet queues in eager torch, the r9y9 ``incremental_forward`` way.

    Each dilated layer l keeps ``buffers[l]`` (B, d_l + 1, R): its inputs of the last
    d_l + 1 steps, shifted by one row per step (a copy, as r9y9's ``input_buffer``);
    the kernel-2 conv reads rows 0 and d_l. State lives in this object: call
    :meth:`reset` before each utterance.
    """

    name = "cached-torch"

    def __init__(self, model):
        self.model = model.eval()
        self.cfg = model.cfg
        # (G, R, 2) -> (G, 2R) over [x_{t-d}, x_t]: the linearised conv r9y9 caches.
        self.weights = [conv.weight.detach().transpose(1, 2).reshape(conv.weight.shape[0], -1)
                        for conv in model.dilated]
        self.buffers: list[torch.Tensor] = []
        self.reset(1)

    def reset(self, batch: int = 1) -> None:
        R = self.cfg.residual_channels
        self.buffers = [torch.zeros(batch, d + 1, R) for d in self.model.dilation_list]

    @torch.no_grad()
    def step(self, x: torch.Tensor, cond_t: torch.Tensor) -> torch.Tensor:
        """x (B,) int64 previous class, cond_t (B, L, G) -> logits (B, A)."""
        m, G = self.model, self.cfg.gate_channels
        h = m.embed(x)
        skip = 0
        for i, (buf, w, d) in enumerate(zip(self.buffers, self.weights, m.dilation_list)):
            buf[:, :-1] = buf[:, 1:].clone()
            buf[:, -1] = h
            taps = buf[:, 0::d]  # (B, 2, R): rows t - d and t
            a = F.linear(taps.reshape(taps.shape[0], -1), w) + cond_t[:, i]
            z = torch.tanh(a[:, : G // 2]) * torch.sigmoid(a[:, G // 2:])
            skip = skip + F.linear(z, m.skip[i].weight[:, :, 0], m.skip[i].bias)
            if i < self.cfg.layers - 1:
                h = h + F.linear(z, m.residual[i].weight[:, :, 0], m.residual[i].bias)
        out = F.relu(F.linear(F.relu(skip), m.head1.weight[:, :, 0], m.head1.bias))
        return F.linear(out, m.head2.weight[:, :, 0], m.head2.bias)

    @torch.no_grad()
    def teacher_force(self, x: np.ndarray, cond: np.ndarray) -> np.ndarray:
        """x (T,) int64 previous classes, cond (T, L, G) -> logits (T, A) float32."""
        self.reset(1)
        xt, ct = torch.from_numpy(np.asarray(x, np.int64)), torch.from_numpy(cond)
        return np.stack([self.step(xt[t:t + 1], ct[t:t + 1])[0].numpy()
                         for t in range(len(xt))])

    @torch.no_grad()
    def generate(self, cond: np.ndarray, seed: int = 0, temperature: float = 1.0,
                 step_times: list | None = None) -> np.ndarray:
        """cond (T, L, G) -> classes (T,) int64 (noise stream 0, like ``synthesize``)."""
        import time

        self.reset(1)
        T = cond.shape[0]
        u = uniforms(seed, [0], 0, T)
        ct = torch.from_numpy(cond)
        x = torch.tensor([silence_class(self.cfg.quantization_channels)], dtype=torch.int64)
        out = np.empty(T, np.int64)
        for t in range(T):
            t0 = time.perf_counter()
            logits = self.step(x, ct[t:t + 1]).numpy()
            out[t] = sample(logits, u[:, t], temperature)[0]
            x = torch.from_numpy(out[t:t + 1])
            if step_times is not None:
                step_times.append(time.perf_counter() - t0)
        return out


BASELINES = {NaiveWaveNet.name: NaiveWaveNet, QueueWaveNet.name: QueueWaveNet}


def model_cond(model, features: np.ndarray | None, n_samples: int, speaker: int | None = None,
               gc: np.ndarray | None = None) -> np.ndarray:
    """cond (T, L, G) float32 for one utterance from normalised features (Tf, D)."""
    t = lambda a, dt: None if a is None else torch.as_tensor(a, dtype=dt)[None]
    with torch.no_grad():
        c = model.condition(t(features, torch.float32),
                            None if speaker is None else torch.tensor([speaker]),
                            n_samples=n_samples, gc=t(gc, torch.float32), batch=1)
    return c[0].contiguous().numpy()
