"""The autoregressive step loop, written once for every backend that supplies a step.

A per-step backend (torch, ONNX Runtime, and on the GPU the torch step, TensorRT) gives
one function ``step(x, cond_t, past) -> (logits, present)``; :func:`run_steps` drives it:
gather the ring rows of the step, step, scatter the new rows back, then sample (or keep
the logits under teacher forcing) and feed the class back as the next input. The arrays
may be numpy (the host loop here) or torch tensors on a device (the graph-captured loop of
:mod:`vocoder.runtime.gpu_loop`): the few array operations that differ come in an
:class:`ArrayOps`. Fused backends (numba, Triton) own their inner loop instead.

Every per-step sequence is step-major: ``rows[i]`` are step i's ring rows (L,),
``cond[i]`` its (B, L, G) gate biases, ``u[i]``/``inv[i]`` its (B,) uniforms and inverse
temperatures, ``teacher[i]`` its (B,) inputs, and ``classes[i]`` (B,) / ``logits[i]``
(B, A) receive its outputs. Views of (B, T, ...) arrays transposed to (T, B, ...) serve.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vocoder.runtime.backend import Backend, StepState
from vocoder.runtime.sampling import host_sampler, inverse_temperatures


class StepFunction(Protocol):
    def __call__(self, x: Any, cond_t: Any, past: Any) -> tuple[Any, Any]:
        """x (B,) int64 inputs, cond_t (B, L, G), past (B, L, R) ring rows ->
        logits (B, A), present (B, L, R). Outputs may be buffers reused by the next call."""


@dataclass(frozen=True)
class ArrayOps:
    """The array operations of one memory space (numpy, or torch on a device)."""

    gather: Callable[[Any, Any, Any], None]    # (ring (B, S, R), rows (L,), out (B, L, R))
    scatter: Callable[[Any, Any, Any], None]   # (ring, rows, src (B, L, R))
    copy: Callable[[Any, Any], None]           # (dst, src): dst[...] = src
    pick: Callable[[Any, Any, Any, Any], None]  # (logits (B, A), u, inv, out (B,)): a class


class Repeat:
    """``r[i]`` is the same value for every i (one inverse temperature for all steps)."""

    def __init__(self, value):
        self.value = value

    def __getitem__(self, i):
        return self.value


def run_steps(step: StepFunction, ops: ArrayOps, n: int, ring, rows, past, cond, *,
              x0=None, classes=None, u=None, inv=None, teacher=None, logits=None) -> None:
    """Steps 0..n-1 (see the module docstring for the sequences). Free-running when
    ``teacher`` is None: step 0 reads ``x0`` (B,), step i the class step i - 1 picked
    into ``classes``; under teacher forcing every input comes from ``teacher`` and the
    logits go to ``logits``. ``ring`` (B, S, R) is updated in place; ``past`` (B, L, R)
    is the buffer the step reads its ring rows from."""
    for i in range(n):
        r = rows[i]
        ops.gather(ring, r, past)
        if teacher is not None:
            x = teacher[i]
        else:
            x = x0 if i == 0 else classes[i - 1]
        lg, present = step(x, cond[i], past)
        ops.scatter(ring, r, present)
        if teacher is not None:
            ops.copy(logits[i], lg)
        else:
            ops.pick(lg, None if u is None else u[i], None if inv is None else inv[i],
                     classes[i])


def _numpy_gather(ring, rows, out):
    np.take(ring, rows, axis=1, out=out)


def _numpy_scatter(ring, rows, src):
    ring[:, rows] = src


def _numpy_copy(dst, src):
    dst[...] = src


def numpy_ops(sampler=None) -> ArrayOps:
    """Host arrays; ``pick`` is ``sampler`` (default :func:`sampling.host_sampler`)."""
    sampler = sampler or host_sampler()

    def pick(logits, u, inv, out):
        out[...] = sampler(logits, u, inv)
    return ArrayOps(_numpy_gather, _numpy_scatter, _numpy_copy, pick)


class HostStep(Protocol):
    """A :class:`StepFunction` on numpy arrays with the (B, L, R) buffer it reads ``past``
    from (for ONNX Runtime, the buffer bound to the session's input)."""

    past: np.ndarray

    def __call__(self, x, cond_t, past) -> tuple[np.ndarray, np.ndarray]: ...


#: Smallest lane: a batch of at least twice this many streams may be split in two.
MIN_LANE_BATCH = 8


class HostStepBackend(Backend):
    """A backend that supplies only :meth:`step_function` over numpy arrays; the ring is
    numpy and :func:`run_steps` is the loop.

    ``lanes`` 2: a batch of at least ``2 * MIN_LANE_BATCH`` streams is split in two halves
    whose loops run on two threads (for steps that release the GIL)."""

    lanes: int = 1

    def __init__(self, bundle):
        super().__init__(bundle)
        self._ops = numpy_ops()
        self._pool: ThreadPoolExecutor | None = None

    def step_function(self, batch: int, lane: int) -> HostStep:
        """The step for ``batch`` streams on lane ``lane`` (0 or 1), made once per pair."""
        raise NotImplementedError

    def generate(self, cond, state, u, temperature):
        B, T = cond.shape[:2]
        out = np.empty((B, T), np.int64)
        u_rows = np.ascontiguousarray(np.asarray(u, dtype=np.float32).T)
        inv_rows = np.ascontiguousarray(inverse_temperatures(temperature, B, T).T)
        self._run(cond, state, out, u_rows=u_rows, inv_rows=inv_rows)
        if T:
            state.x = out[:, -1].copy()
        return out

    def teacher_force(self, cond, x, state):
        B, T = cond.shape[:2]
        out = np.empty((B, T, self.config.quantization_channels), np.float32)
        self._run(cond, state, out, teacher=np.asarray(x, dtype=np.int64))
        return out

    def _run(self, cond, state: StepState, out, u_rows=None, inv_rows=None, teacher=None):
        B, T = cond.shape[:2]
        rows = self.layout.slots[(state.t + np.arange(T)) % self.layout.period]
        x0 = np.asarray(state.x, dtype=np.int64)

        def lane(a: int, b: int, k: int) -> None:
            step = self.step_function(b - a, k)
            mine = out[a:b].swapaxes(0, 1)
            run_steps(step, self._ops, T, state.ring[a:b], rows, step.past,
                      cond[a:b].swapaxes(0, 1), x0=x0[a:b],
                      classes=None if teacher is not None else mine,
                      u=None if u_rows is None else u_rows[:, a:b],
                      inv=None if inv_rows is None else inv_rows[:, a:b],
                      teacher=None if teacher is None else teacher[a:b].T,
                      logits=mine if teacher is not None else None)

        if self.lanes > 1 and B >= 2 * MIN_LANE_BATCH:
            # Streams are independent: two halves on two threads.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="vocoder-lane")
            second = self._pool.submit(lane, B // 2, B, 1)
            lane(0, B // 2, 0)
            second.result()
        else:
            lane(0, B, 0)
        state.t += T

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
