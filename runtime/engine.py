"""Drives a backend over several streams in lockstep, chunk by chunk.

A *job* is one stream of samples: a whole utterance, or one folded segment of it. Jobs
run side by side as one batch; each chunk gets its conditioning from the job's
:class:`~vocoder.runtime.conditioning.Conditioner` and its uniforms from the counter-based
noise, so memory is bounded by the chunk, never by the utterance.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vocoder.runtime.backend import Backend
from vocoder.runtime.conditioning import Conditioner, condition_batch
from vocoder.runtime.noise import uniforms

#: Budget for one chunk's conditioning tensor (B, chunk, L, G) float32: large enough that
#: the per-call overhead of ``condition`` is small, small enough to stay in memory.
COND_CHUNK_BYTES = 64 << 20
#: At most this many steps per chunk: at batch 1 the budget above would be 6,500 steps,
#: 64 MB of conditioning written on the second thread while the step loop runs; 1,024
#: steps made the native single stream ~6% faster end to end (median of 5, 2-core Xeon).
MAX_CHUNK = 1024


@dataclass
class Job:
    """Samples ``[start, start + length)`` of the utterance behind ``cond``.

    stream: noise stream id (the utterance's index in a batch); teacher: (length,) int64
    previous classes for teacher forcing, or None to sample.
    """

    cond: Conditioner
    stream: int
    start: int
    length: int
    teacher: np.ndarray | None = None


def default_chunk(backend: Backend, batch: int) -> int:
    cfg = backend.config
    per_sample = batch * cfg.layers * cfg.gate_channels * 4
    return int(np.clip(COND_CHUNK_BYTES // per_sample, 64, MAX_CHUNK))


def _cond_batch(backend: Backend, jobs: list[Job], tau: int, n: int, buf) -> np.ndarray:
    return condition_batch(backend, [(j.cond, j.start + tau, j.start + tau + n) for j in jobs],
                           buf[:, :n])


def generate(backend: Backend, jobs: list[Job], seed: int, temperature: float,
             chunk: int | None = None, progress=None,
             voiced_temperature: float | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Free-running generation. Yields ``(tau, classes (B, n))`` per chunk, where tau is
    the offset from each job's start. ``progress`` (a tqdm-like object) is updated with
    the number of steps done. ``voiced_temperature`` (if not None) replaces
    ``temperature`` in the samples of voiced frames (FFTNet's conditional sampling)."""
    if voiced_temperature is not None:
        for j in jobs:
            j.cond.require_voicing()
        temperature = _VoicedTemperature(temperature, voiced_temperature)
    chunk = chunk or default_chunk(backend, len(jobs))
    total = max(j.length for j in jobs)
    state = backend.new_state(len(jobs))
    starts = list(range(0, total, chunk))
    span = lambda tau: min(chunk, total - tau)
    try:
        if not backend.prefetch_condition:
            buf = backend.cond_buffer(len(jobs), span(0))
            conds = (_cond_batch(backend, jobs, tau, span(tau), buf) for tau in starts)
            yield from _steps(backend, jobs, starts, conds, state, seed, temperature, progress)
            return
        # Conditioning of chunk k+1 runs on a second thread (ONNX Runtime releases the GIL)
        # while the step loop of chunk k runs: the two halves of the work use both cores.
        bufs = [backend.cond_buffer(len(jobs), span(0)) for _ in range(2)]
        with ThreadPoolExecutor(1, thread_name_prefix="vocoder-cond") as pool:
            def conds():
                fut = pool.submit(_cond_batch, backend, jobs, 0, span(0), bufs[0])
                for k in range(len(starts)):
                    cond = fut.result()
                    if k + 1 < len(starts):
                        nxt = starts[k + 1]
                        fut = pool.submit(_cond_batch, backend, jobs, nxt, span(nxt),
                                          bufs[(k + 1) % 2])
                    yield cond

            yield from _steps(backend, jobs, starts, conds(), state, seed, temperature,
                              progress)
    finally:
        backend.release_state(state)  # its ring serves the next utterance of this size


@dataclass(frozen=True)
class _VoicedTemperature:
    """One temperature in unvoiced frames, another in voiced ones."""

    unvoiced: float
    voiced: float

    def per_sample(self, jobs: list[Job], tau: int, n: int) -> np.ndarray:
        """(B, n) temperatures of the chunk at ``tau``."""
        return np.stack([np.where(j.cond.voicing(j.start + tau, j.start + tau + n),
                                  self.voiced, self.unvoiced) for j in jobs])


def _steps(backend, jobs, starts, conds, state, seed, temperature, progress):
    for tau, cond in zip(starts, conds):
        n = cond.shape[1]
        u = np.concatenate([uniforms(seed, [j.stream], j.start + tau, n) for j in jobs])
        temp = temperature.per_sample(jobs, tau, n) \
            if isinstance(temperature, _VoicedTemperature) else temperature
        classes = backend.generate(cond, state, u, temp)
        if progress is not None:
            progress.update(n)
        yield tau, classes


def teacher_force(backend: Backend, jobs: list[Job],
                  chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Teacher-forced pass. Yields ``(tau, logits (B, n, A))`` per chunk."""
    chunk = chunk or default_chunk(backend, len(jobs))
    total = max(j.length for j in jobs)
    state = backend.new_state(len(jobs))
    # One conditioning buffer per run, reused by every chunk (a fresh one per chunk
    # costs a page fault per 4 KB), in the backend's memory.
    buf = backend.cond_buffer(len(jobs), min(chunk, total))
    try:
        for tau in range(0, total, chunk):
            n = min(chunk, total - tau)
            cond = _cond_batch(backend, jobs, tau, n, buf)
            x = np.zeros((len(jobs), n), dtype=np.int64)
            for b, j in enumerate(jobs):
                part = j.teacher[tau: tau + n]
                x[b, : len(part)] = part
            yield tau, backend.teacher_force(cond, x, state)
    finally:
        backend.release_state(state)
