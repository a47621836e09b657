"""Drives a backend over several streams in lockstep, chunk by chunk.

A *job* is one stream of samples: a whole utterance, or one folded segment of it. Jobs
run side by side as one batch; each chunk gets its conditioning from the job's
:class:`~vocoder.runtime.conditioning.Conditioner` and its uniforms from the counter-based
noise, so memory is bounded by the chunk, never by the utterance.

A model with a context stack (``context_pool`` = P) conditions each block of P samples
also on the input classes of the blocks before it, which exist only once generated: the
backend's ``generate`` / ``teacher_force`` then runs on pieces of each chunk that never
cross a block boundary, and at every boundary the backend's ``context_step`` turns the
block's inputs into the next block's bias, added to that piece's conditioning. The
per-job context state is a :class:`ContextRun` passed through the loop. Such runs start
at the utterance start (no folding).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vocoder.errors import VocoderError
from vocoder.mulaw import silence_class
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


@dataclass
class ContextRun:
    """The context stack's state for B jobs during one run (explicit data, updated by
    :func:`_pieces` as the run advances).

    state (B, sum(d_c), Rc) float32 the backend's context state; block (B, P) int64 the
    input classes of the current block so far (before sample 0: the initial block, all
    silence); bias (B, L, G) float32 the current block's context gate bias."""

    state: np.ndarray
    block: np.ndarray
    bias: np.ndarray | None = None

    @classmethod
    def start(cls, backend: Backend, jobs: list[Job]) -> ContextRun | None:
        """A fresh run for ``jobs``, or None for a model without a context stack."""
        cfg = backend.config
        if not cfg.context_pool:
            return None
        if any(j.start for j in jobs):
            raise VocoderError("a model with a context stack generates from the start of "
                               "the utterance only: its context cannot start mid-utterance "
                               "(use fold=False)")
        block = np.full((len(jobs), cfg.context_pool),
                        silence_class(cfg.quantization_channels), np.int64)
        return cls(backend.new_context_state(len(jobs)), block)


def _pieces(backend: Backend, ctx: ContextRun, tau: int, n: int, cond):
    """Split the chunk ``[tau, tau + n)`` at block boundaries. Yields ``(a, b)``, offsets
    into the chunk, after adding the piece's context bias to ``cond[:, a:b]`` in place
    (running the context step at each boundary). The caller records each piece's inputs
    with :func:`_record` before the next."""
    cfg = backend.config
    P = cfg.context_pool
    a = 0
    while a < n:
        t = tau + a
        b = min(n, a + P - t % P)
        if t % P == 0:  # a new block: its bias comes from the inputs of the one before
            bias, ctx.state = backend.context_step(ctx.block, ctx.state)
            ctx.bias = np.asarray(bias, np.float32).reshape(
                len(ctx.block), cfg.layers, cfg.gate_channels)
        cond[:, a:b] += ctx.bias[:, None]
        yield a, b
        a = b


def _record(ctx: ContextRun, t: int, inputs: np.ndarray) -> None:
    """Store the input classes (B, m) of samples ``[t, t + m)`` (within one block) in the
    current block."""
    p = t % ctx.block.shape[1]
    ctx.block[:, p:p + inputs.shape[1]] = inputs


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
    ctx = ContextRun.start(backend, jobs)
    state = backend.new_state(len(jobs))
    starts = list(range(0, total, chunk))
    span = lambda tau: min(chunk, total - tau)
    try:
        if not backend.prefetch_condition:
            buf = backend.cond_buffer(len(jobs), span(0))
            conds = (_cond_batch(backend, jobs, tau, span(tau), buf) for tau in starts)
            yield from _steps(backend, jobs, starts, conds, state, ctx, seed, temperature,
                              progress)
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

            yield from _steps(backend, jobs, starts, conds(), state, ctx, seed, temperature,
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


def _steps(backend, jobs, starts, conds, state, ctx, seed, temperature, progress):
    for tau, cond in zip(starts, conds):
        n = cond.shape[1]
        u = np.concatenate([uniforms(seed, [j.stream], j.start + tau, n) for j in jobs])
        temp = temperature.per_sample(jobs, tau, n) \
            if isinstance(temperature, _VoicedTemperature) else temperature
        if ctx is None:
            classes = backend.generate(cond, state, u, temp)
        else:
            parts = []
            for a, b in _pieces(backend, ctx, tau, n, cond):
                prev = np.array(state.x, np.int64)  # the input of the piece's first sample
                got = backend.generate(cond[:, a:b], state, u[:, a:b],
                                       temp if np.ndim(temp) == 0 else temp[:, a:b])
                # x[t] is the class of sample t - 1: the piece's inputs are the class
                # before it, then its own classes but the last.
                _record(ctx, tau + a, np.concatenate([prev[:, None], got[:, :-1]], 1))
                parts.append(got)
            classes = np.concatenate(parts, 1)
        if progress is not None:
            progress.update(n)
        yield tau, classes


def teacher_force(backend: Backend, jobs: list[Job],
                  chunk: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Teacher-forced pass. Yields ``(tau, logits (B, n, A))`` per chunk."""
    chunk = chunk or default_chunk(backend, len(jobs))
    total = max(j.length for j in jobs)
    ctx = ContextRun.start(backend, jobs)
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
            if ctx is None:
                yield tau, backend.teacher_force(cond, x, state)
                continue
            parts = []
            for a, b in _pieces(backend, ctx, tau, n, cond):
                parts.append(backend.teacher_force(cond[:, a:b], x[:, a:b], state))
                _record(ctx, tau + a, x[:, a:b])
            yield tau, np.concatenate(parts, 1)
    finally:
        backend.release_state(state)
