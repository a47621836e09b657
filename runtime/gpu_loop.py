"""The GPU step loop: ring buffers, gather/scatter, sampling and the next input all stay
on the device, and one period of D_max steps is captured once as a CUDA graph.

Every dilation d_l divides D_max, so the ring slots of steps ``t .. t + D_max - 1`` are
the rows of :class:`~vocoder.runtime.ring.RingLayout`'s slot table rotated by
``t mod D_max``. The loop keeps that rotated table in a static device buffer ``idx``
(P, L), and step i of a period reads ``idx[i]``: a graph captured once per batch size
and mode is valid at every phase, and only a rotation (a small copy) is needed when a
chunk starts at a new phase. Between replays the next period's conditioning and
uniforms are copied into static buffers; a chunk that is not a multiple of D_max runs
its last ``T mod D_max`` steps eagerly through the *same* code (:meth:`PeriodLoop._steps`)
on the same buffers, which is also the whole loop on the CPU and when graphs are off.

Sampling is :mod:`vocoder.runtime.sampling`'s inverse CDF, computed in float64 on the
device from the same uniforms (uploaded per chunk from the host's counter-based noise).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from vocoder.runtime.step_loop import ArrayOps, Repeat, run_steps

#: What a period computes: sampled classes, argmax classes (temperature 0), or logits.
SAMPLE, GREEDY, TEACHER = "sample", "greedy", "teacher"
MODES = (SAMPLE, GREEDY, TEACHER)


def segments(n_steps: int, period: int) -> list[tuple[int, int]]:
    """Split ``n_steps`` steps into ``(start, length)`` periods; only the last may be short."""
    return [(s, min(period, n_steps - s)) for s in range(0, n_steps, period)]


def sample_torch(logits: torch.Tensor, u: torch.Tensor, inv_temperature: torch.Tensor,
                 ) -> torch.Tensor:
    """Inverse-CDF sampling exactly as :func:`vocoder.runtime.sampling.sample`, on the
    tensor's device, in float64.

    logits (B, A) any float dtype; u (B,) float32 in (0, 1); inv_temperature a 0-d float64
    tensor (1 / temperature, a tensor so that a captured graph reads it at replay).
    Returns (B,) int64. No host synchronisation: safe inside CUDA graph capture.
    """
    z = logits.to(torch.float64) * inv_temperature
    p = torch.exp(z - z.amax(dim=-1, keepdim=True))
    c = torch.cumsum(p, dim=-1)
    thresh = u.to(torch.float64).unsqueeze(-1) * c[:, -1:]
    k = (c < thresh).sum(dim=-1)
    return k.clamp_(max=logits.shape[-1] - 1)


def _torch_sample(logits, u, inv, out):
    out.copy_(sample_torch(logits, u, inv))


def _torch_argmax(logits, u, inv, out):
    torch.argmax(logits, dim=-1, out=out)


_TORCH = dict(gather=lambda ring, rows, out: torch.index_select(ring, 1, rows, out=out),
              scatter=lambda ring, rows, src: ring.index_copy_(1, rows, src),
              copy=lambda dst, src: dst.copy_(src))
#: The step loop's array operations on the device, per mode.
TORCH_OPS = {SAMPLE: ArrayOps(**_TORCH, pick=_torch_sample),
             GREEDY: ArrayOps(**_TORCH, pick=_torch_argmax),
             TEACHER: ArrayOps(**_TORCH, pick=_torch_sample)}


def _device(a: Any, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A host array or a tensor on ``device`` in ``dtype`` (no copy when it already is)."""
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        a = np.array(a)  # torch refuses to wrap read-only (e.g. broadcast) arrays silently
    return torch.as_tensor(a).to(device, dtype)


#: TensorRT requires every bound tensor address to be 256-byte aligned.
ALIGN_BYTES = 256


def aligned_rows(rows: int, shape: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """Zeroed (rows, *shape) tensor whose rows ``t[i]`` are contiguous and start at
    ALIGN_BYTES-aligned addresses (row stride padded, start offset into the allocation
    whatever the allocator's own alignment), so each row can be bound as a step input."""
    n = int(np.prod(shape, dtype=np.int64))
    size = torch.empty((), dtype=dtype).element_size()
    per = ALIGN_BYTES // size
    stride = -(-max(n, 1) // per) * per
    flat = torch.zeros(rows * stride + per, dtype=dtype, device=device)
    skip = (-flat.data_ptr() % ALIGN_BYTES) // size
    return flat[skip: skip + rows * stride].view(rows, stride)[:, :n].view(rows, *shape)


def aligned(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Zeroed contiguous tensor at an ALIGN_BYTES-aligned address."""
    return aligned_rows(1, shape, dtype, device)[0]


class StepExecutor(ABC):
    """One autoregressive step on the device: the part that differs between ``cuda``
    (the torch step module) and ``tensorrt`` (an engine).

    ``io_dtype`` is the dtype of ``cond_t``, ``past`` and ``present`` (and so of the
    ring buffers). :meth:`prepare` is called once per batch size before the first step
    and before graph capture. Inputs passed to :meth:`__call__` are contiguous device
    tensors; a graph-captured loop passes the same tensors (same addresses) at every
    replay. The returned ``logits`` and ``present`` may be buffers the executor reuses
    at its next call: the loop consumes them before calling again.
    """

    name: str = "?"
    io_dtype: torch.dtype = torch.float32
    #: True when the executor also has ``fused_step(ring, rows, x, cond_t, u, inv_t, mode,
    #: out)``, one call that gathers ``past`` from the ring rows, steps, scatters
    #: ``present`` back and samples (see :class:`~vocoder.runtime.triton_step.TritonStep`);
    #: the loop then makes that one call per step instead of four.
    fused: bool = False

    def prepare(self, batch: int) -> None:  # noqa: B027 - optional hook
        """Allocate what a batch size needs (engine contexts, output buffers)."""

    @abstractmethod
    def __call__(self, x: torch.Tensor, cond_t: torch.Tensor,
                 past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,) int64, cond_t (B, L, G), past (B, L, R) -> logits (B, A), present (B, L, R)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release device resources (idempotent)."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "io_dtype": str(self.io_dtype).replace("torch.", "")}


class TorchStep(StepExecutor):
    """The torch :meth:`~vocoder.model.WaveNet.step` itself, in fp32, fp16 or bf16.

    ``model`` must already be on the device in ``dtype`` and in eval mode.
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype):
        self.model = model
        self.io_dtype = dtype

    def __call__(self, x, cond_t, past):
        return self.model.step(x, cond_t, past)


@dataclass
class _Buffers:
    """Static device buffers of one batch size; their addresses never change, which is
    what lets a captured graph be replayed. P = period, B = batch."""

    past: torch.Tensor       # (B, L, R) io_dtype: gathered for the current step
    idx: torch.Tensor        # (P, L) int64: ring rows of step i of the period (*)
    cond: torch.Tensor       # (P, B, L, G) io_dtype: this period's conditioning (*)
    u: torch.Tensor          # (P, B) float32: this period's uniforms (*)
    teacher: torch.Tensor    # (P, B) int64: this period's inputs under teacher forcing (*)
    classes: torch.Tensor    # (P, B) int64: this period's sampled classes (*)
    x: torch.Tensor          # (B,) int64: input of the period's first step
    inv_t: torch.Tensor      # () float64: 1 / temperature
    phase: int = -1          # rotation currently held in idx
    logits: torch.Tensor | None = None    # (P, B, A) float32, teacher forcing only
    graphs: dict[str, Any] = field(default_factory=dict)
    # (*) rows padded to aligned addresses: row i is step i's input, bound as it is, and
    # every step's pointers have the same alignment (Triton specialises kernels on it, and
    # no kernel may be compiled during graph capture).


class PeriodLoop:
    """Runs chunks of steps for a :class:`StepExecutor` on ``device``.

    slots (P, L) int64: the ring layout's slot table (P = D_max). ``graphs``: capture one
    period per (batch size, mode) as a CUDA graph and replay it (CUDA devices only);
    otherwise every step runs eagerly through the same code.
    """

    def __init__(self, executor: StepExecutor, slots: np.ndarray, ring_size: int,
                 residual: int, gate: int, classes: int, device: torch.device,
                 graphs: bool = False):
        if graphs and device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, got {device}")
        self.executor = executor
        self.slots = np.asarray(slots, dtype=np.int64)
        self.period, self.layers = self.slots.shape
        self.ring_size, self.residual, self.gate, self.classes = ring_size, residual, gate, \
            classes
        self.device = device
        self.use_graphs = graphs
        self._table = torch.from_numpy(np.concatenate([self.slots, self.slots])).to(device)
        self._bufs: dict[int, _Buffers] = {}
        self._pool = None
        self.captures = 0  # how many graphs were captured (for tests and benchmarks)

    # -- buffers ------------------------------------------------------------------------
    def buffers(self, batch: int) -> _Buffers:
        if batch not in self._bufs:
            P, L, dev, dt = self.period, self.layers, self.device, self.executor.io_dtype
            z = lambda *shape, dtype=dt: torch.zeros(shape, dtype=dtype, device=dev)
            self.executor.prepare(batch)
            rows = lambda shape, dtype=dt: aligned_rows(P, shape, dtype, dev)
            self._bufs[batch] = _Buffers(
                past=aligned((batch, L, self.residual), dt, dev),
                idx=rows((L,), torch.int64),
                cond=rows((batch, L, self.gate)), u=rows((batch,), torch.float32),
                teacher=rows((batch,), torch.int64), classes=rows((batch,), torch.int64),
                x=aligned((batch,), torch.int64, dev), inv_t=z(dtype=torch.float64))
        return self._bufs[batch]

    def new_ring(self, batch: int) -> torch.Tensor:
        return torch.zeros((batch, self.ring_size, self.residual), dtype=self.executor.io_dtype,
                           device=self.device)

    def _set_phase(self, buf: _Buffers, t: int) -> None:
        phase = t % self.period
        if buf.phase != phase:
            buf.idx.copy_(self._table[phase: phase + self.period])
            buf.phase = phase

    # -- the steps (eager, or recorded into a graph) -------------------------------------
    def _steps(self, buf: _Buffers, ring: torch.Tensor, n: int, mode: str) -> None:
        """Steps 0..n-1 of a period on the static buffers and ``ring`` (B, S, R). No host
        synchronisation."""
        step = self.executor
        if step.fused:
            for i in range(n):
                x = buf.teacher[i] if mode == TEACHER else buf.x if i == 0 else buf.classes[i - 1]
                out = buf.logits[i] if mode == TEACHER else buf.classes[i]
                step.fused_step(ring, buf.idx[i], x, buf.cond[i], buf.u[i], buf.inv_t, mode,
                                out)
        else:
            teacher = mode == TEACHER
            run_steps(step, TORCH_OPS[mode], n, ring, buf.idx, buf.past, buf.cond, x0=buf.x,
                      classes=None if teacher else buf.classes, u=buf.u,
                      inv=Repeat(buf.inv_t), teacher=buf.teacher if teacher else None,
                      logits=buf.logits if teacher else None)
        if mode != TEACHER:
            buf.x.copy_(buf.classes[n - 1])

    def _graph(self, buf: _Buffers, ring: torch.Tensor, mode: str):
        """The captured period for (batch, mode, ring), capturing it on first use: a graph
        reads the memory it was captured on, so each ring (a backend pools a few per batch
        size) gets its own. Warm-up and capture scribble on the static buffers and on the
        ring; callers load their state afterwards."""
        key = (mode, ring.data_ptr())
        if key not in buf.graphs:
            if self._pool is None:
                self._pool = torch.cuda.graph_pool_handle()
            saved = ring.clone()
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # lazy library init must not happen in capture
                self._steps(buf, ring, min(2, self.period), mode)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool):
                self._steps(buf, ring, self.period, mode)
            ring.copy_(saved)
            buf.graphs[key] = graph
            self.captures += 1
        return buf.graphs[key]

    # -- a chunk --------------------------------------------------------------------------
    @torch.no_grad()
    def run(self, ring: torch.Tensor, x0: np.ndarray, t0: int, cond: Any, mode: str,
            u: np.ndarray | None = None, temperature: float = 1.0,
            teacher: np.ndarray | None = None) -> np.ndarray:
        """Run T steps starting at step ``t0`` for B streams.

        ring (B, S, R) device tensor, updated in place; x0 (B,) int64 input of the first
        step (ignored under teacher forcing); cond (B, T, L, G) numpy or device tensor;
        u (B, T) float32 (mode SAMPLE); teacher (B, T) int64 (mode TEACHER).
        Returns classes (B, T) int64, or logits (B, T, A) float32 under teacher forcing.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        B, T = int(cond.shape[0]), int(cond.shape[1])
        dev = self.device
        buf = self.buffers(B)
        if mode == TEACHER and buf.logits is None:
            buf.logits = torch.zeros((self.period, B, self.classes), dtype=torch.float32,
                                     device=dev)
        graph = self._graph(buf, ring, mode) if self.use_graphs and T >= self.period else None
        cond_d = _device(cond, dev, self.executor.io_dtype)
        if mode == SAMPLE:
            u_d = _device(u, dev, torch.float32)
            buf.inv_t.fill_(1.0 / temperature)
        if mode == TEACHER:
            tf_d = _device(teacher, dev, torch.int64)
            out = torch.empty((T, B, self.classes), dtype=torch.float32, device=dev)
        else:
            buf.x.copy_(torch.as_tensor(np.asarray(x0, dtype=np.int64)))
            out = torch.empty((T, B), dtype=torch.int64, device=dev)
        self._set_phase(buf, t0)
        for s, n in segments(T, self.period):
            buf.cond[:n].copy_(cond_d[:, s:s + n].transpose(0, 1))
            if mode == SAMPLE:
                buf.u[:n].copy_(u_d[:, s:s + n].transpose(0, 1))
            elif mode == TEACHER:
                buf.teacher[:n].copy_(tf_d[:, s:s + n].transpose(0, 1))
            if graph is not None and n == self.period:
                graph.replay()
            else:
                self._steps(buf, ring, n, mode)
            out[s:s + n].copy_(buf.logits[:n] if mode == TEACHER else buf.classes[:n])
        return out.transpose(0, 1).contiguous().cpu().numpy()

    def close(self) -> None:
        self._bufs.clear()
        self._pool = None
