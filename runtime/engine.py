"""Drives a backend over several streams in lockstep, chunk by chunk.

A *job* is one stream of samples: a whole utterance, or one folded segment of it. Jobs
run side by side as one batch; each chunk gets its conditioning from the job's
:class:`~vocoder.runtime.conditioning.Conditioner` and its uniforms from the counter-based
noise, so memory is bounded by the chunk, never by the utterance.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from vocoder.runtime.backend import Backend
from vocoder.runtime.conditioning import Conditioner, condition_batch
from vocoder.runtime.noise import uniforms

#: Budget for one chunk's conditioning tensor (B, chunk, L, G) float32: large enough that
#: the per-call overhead of ``condition`` is small, small enough to stay in memory.
COND_CHUNK_BYTES = 64 << 20


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
    return int(np.clip(COND_CHUNK_BYTES // per_sample, 64, 8192))


def _cond_batch(jobs: list[Job], tau: int, n: int, buf: np.ndarray) -> np.ndarray:
    return condition_batch(jobs[0].cond.backend,
                           [(j.cond, j.start + tau, j.start + tau + n) for j in jobs],
                           buf[:, :n])


def _cond_buffer(jobs: list[Job], chunk: int) -> np.ndarray:
    """One conditioning buffer per run, reused by every chunk (a fresh one per chunk
    costs a page fault per 4 KB: tens of ms at batch 16)."""
    cfg = jobs[0].cond.cfg
    return np.empty((len(jobs), chunk, cfg.layers, cfg.gate_channels), np.float32)


def generate(backend: Backend, jobs: list[Job], seed: int, temperature: float,
             chunk: int | None = None, progress=None) -> Iterator[tuple[int, np.ndarray]]:
    """Free-running generation. Yields ``(tau, classes (B, n))`` per chunk, where tau is
    the offset from each job's start. ``progress`` (a tqdm-like object) is updated with
    the number of steps done."""
    chunk = chunk or default_chunk(backend, len(jobs))
    total = max(j.length for j in jobs)
    state = backend.new_state(len(jobs))
    buf = _cond_buffer(jobs, min(chunk, total))
    for tau in range(0, total, chunk):
        n = min(chunk, total - tau)
        cond = _cond_batch(jobs, tau, n, buf)
        u = np.concatenate([uniforms(seed, [j.stream], j.start + tau, n) for j in jobs])
        classes = backend.generate(cond, state, u, temperature)
        if progress is not None:
            progress.update(n)
        yield tau, classes


def teacher_force(backend: Backend, jobs: list[Job],
                  chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Teacher-forced pass. Yields ``(tau, logits (B, n, A))`` per chunk."""
    chunk = chunk or default_chunk(backend, len(jobs))
    total = max(j.length for j in jobs)
    state = backend.new_state(len(jobs))
    buf = _cond_buffer(jobs, min(chunk, total))
    for tau in range(0, total, chunk):
        n = min(chunk, total - tau)
        cond = _cond_batch(jobs, tau, n, buf)
        x = np.zeros((len(jobs), n), dtype=np.int64)
        for b, j in enumerate(jobs):
            part = j.teacher[tau: tau + n]
            x[b, : len(part)] = part
        yield tau, backend.teacher_force(cond, x, state)
