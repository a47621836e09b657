"""The native backend: the whole step loop of a chunk compiled with numba, on one CPU core.

A chunk of T steps for B streams is one call into :func:`native_kernels.run_chunk`: ring
gather and scatter, the dilated conv (its past tap as small blocked products a few steps
ahead, its current tap per step; layer 0's as table lookups), the gated
units (a rational tanh), the fused skip + residual product, the output head and the
sampling (inverse CDF in float64 with the uniforms passed in, exactly as
:func:`vocoder.runtime.sampling.sample`), with no Python per sample. The weights come
from the bundle's safetensors (:func:`vocoder.export.weights.step_weights`) and are laid
out once, at load time, in the order a step reads them.

Conditioning reuses ``condition.onnx`` on ONNX Runtime (and a context stack
``context_step.onnx``), so the bundle must be exported.

The kernels compile on first use and are cached on disk by numba (``cache=True``):
:attr:`NativeBackend.first_call_s` is the time the first call took in this process (a
compile the first time on a machine, a cache load after that).

At batch 1 the step is bound by streaming its per-step weights (1.8 MB at fp32 for the
default model, the past taps taken out) through the cache every step; ``precision="bf16"``
halves that.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from vocoder.bundle import CONDITION_ONNX, CONTEXT_ONNX
from vocoder.errors import VocoderError
from vocoder.runtime.backend import Backend, StepState
from vocoder.runtime.onnx_sessions import (
    OrtConditioner,
    OrtConditioning,
    OrtContext,
    OrtContextStep,
)
from vocoder.runtime.sampling import inverse_temperatures

_COMPILE_LOCK = threading.Lock()


#: Weight precisions: fp32 (default; logits match torch within 1e-4) or bf16 weights
#: (half the bytes, so the default model's weights fit in L2; float32 arithmetic).
PRECISIONS = ("fp32", "bf16")
_WEIGHT_DTYPE = {"fp32": np.float32, "bf16": np.uint16}
#: Seconds the first kernel call took in this process per precision (compile or cache load).
_FIRST_CALL_S: dict[str, float] = {}


def _kernels(precision: str = "fp32"):
    """The kernels module, with run_chunk compiled or loaded from numba's cache for
    ``precision`` on first use."""
    from vocoder.runtime import native_kernels as nk

    with _COMPILE_LOCK:
        if precision not in _FIRST_CALL_S:
            t = time.perf_counter()
            _warm_up(nk, _WEIGHT_DTYPE[precision])
            _FIRST_CALL_S[precision] = time.perf_counter() - t
    return nk


def _warm_up(nk, wdtype) -> None:
    # One step of a 1-layer model: the types are the ones every real call uses, so this
    # compiles (or loads) the only specialisation there is for this weight dtype.
    R, G, S, A, B, T = 2, 4, 2, 4, 1, 1
    w = np.zeros(R * G + G // 2 * (S + R) + S * S + S * A, wdtype)
    wp = np.zeros(R * G, wdtype)
    e0 = np.zeros((2, A, G), np.float32)
    bias = np.zeros(R + 2 * S + A, np.float32)
    embed = np.zeros((A, R), np.float32)
    cond = np.zeros((B, T, 1, G), np.float32)
    ring = np.zeros((B, 1, R), np.float32)
    slots = np.zeros((1, 1), np.int64)
    sched = np.array([[1], [0], [0], [1]], np.int64)
    x = np.zeros(B, np.int64)
    u = np.full((B, T), 0.5, np.float32)
    nk.run_chunk(w, wp, e0, bias, embed, cond, ring, slots, sched, 0, x, x.copy(), u,
                 np.ones((B, T), np.float64), np.zeros((B, 0), np.int64), nk.MODE_SAMPLE,
                 np.zeros((B, T), np.int64),
                 np.zeros((B, 0, A), np.float32))


class NativeBackend(OrtConditioning, OrtContext, Backend):
    """Compiled generation on one CPU core (numba), built for single-stream real time.

    Batch > 1 reuses every weight across the batch. At fp32 that pays off (batch 1 is
    bound by streaming the weights), so ``synthesize(..., fold=True)`` is much faster on
    long utterances; at bf16 the weights already sit in L2 and batching gains little.
    """

    name = "native"
    prefetch_condition = True

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import numba
        except ImportError:
            return False, "numba is not installed: pip install numba"
        try:
            import onnxruntime  # noqa: F401  (conditioning runs condition.onnx)
        except ImportError as e:
            return False, f"onnxruntime is not installed ({e}); it runs condition.onnx"
        return True, f"numba {numba.__version__}"

    def __init__(self, bundle, precision: str = "fp32", cond_threads: int | None = None,
                 threads: int | None = None, providers: list[str] | None = None):
        """precision: "fp32" (default) or "bf16" (weights stored as bfloat16, arithmetic
        in float32: about twice as fast on the default model, logits within ~1e-2 of
        torch instead of 1e-4, so sampled classes can differ). cond_threads: intra-op
        threads of the conditioning session (default 1: it runs on a second thread, beside
        the step loop, which always runs on the calling thread); ``threads`` (the CLI's
        ``--threads``) only stands in for ``cond_threads`` when that is not given."""
        super().__init__(bundle)
        from vocoder.export.weights import step_weights

        if precision not in PRECISIONS:
            raise VocoderError(f"native backend: precision must be one of {PRECISIONS}, "
                               f"got {precision!r}")
        bundle.exported(CONDITION_ONNX, *((CONTEXT_ONNX,) if bundle.config.context_pool
                                          else ()))
        self.precision = precision
        self._nk = _kernels(precision)
        self.first_call_s = _FIRST_CALL_S[precision]
        self._conditioner = OrtConditioner.open(bundle, cond_threads or threads or 1,
                                                providers)
        self._context = OrtContextStep.open(bundle, providers) \
            if self.config.context_pool else None
        self.packed = self._nk.pack_weights(step_weights(self.config, bundle.weights),
                                            precision)
        self.slots = np.ascontiguousarray(self.layout.slots, dtype=np.int64)
        self.schedule = self._nk.past_schedule(self.config.dilations, self.slots.min(axis=0))
        self._no_teacher: dict[int, np.ndarray] = {}

    # -- step loop --------------------------------------------------------------------
    def _check(self, cond: np.ndarray, state: StepState) -> np.ndarray:
        cfg = self.config
        cond = np.asarray(cond)
        B = state.batch
        want = (B, cfg.layers, cfg.gate_channels)
        if cond.ndim != 4 or (cond.shape[0], *cond.shape[2:]) != want:
            raise VocoderError(f"cond: expected shape (B={B}, T, L={cfg.layers}, "
                               f"G={cfg.gate_channels}), got {cond.shape}")
        ring = state.ring
        if not (isinstance(ring, np.ndarray) and ring.dtype == np.float32
                and ring.flags.c_contiguous and ring.flags.writeable
                and ring.shape == (B, self.layout.size, cfg.residual_channels)):
            raise VocoderError("state was not made by this backend's new_state")
        last = state.last
        if not (isinstance(last, np.ndarray) and last.dtype == np.int64
                and last.shape == (B,) and last.flags.writeable):
            raise VocoderError("state was not made by this backend's new_state")
        # The kernel takes one array type: C-contiguous, writable float32.
        if cond.dtype != np.float32 or not cond.flags.c_contiguous or not cond.flags.writeable:
            cond = np.array(cond, dtype=np.float32, order="C")
        return cond

    def generate(self, cond, state, u, temperature):
        cond = self._check(cond, state)
        B, T = cond.shape[:2]
        u = np.array(u, dtype=np.float32, order="C")  # a copy: the kernel types it writable
        if u.shape != (B, T):
            raise VocoderError(f"u: expected shape ({B}, {T}), got {u.shape}")
        nk = self._nk
        inv = inverse_temperatures(temperature, B, T)
        x = np.array(state.x, dtype=np.int64)
        if x.shape != (B,) or x.min() < 0 or x.max() >= self.config.quantization_channels:
            raise VocoderError("state.x: expected (B,) classes; state was not made by "
                               "this backend's new_state")
        out = np.empty((B, T), np.int64)
        p = self.packed
        nk.run_chunk(p.w, p.wp, p.e0, p.bias, p.embed, cond, state.ring, self.slots,
                     self.schedule, state.t, x, state.last, u, inv, self._empty_teacher(B),
                     nk.MODE_SAMPLE, out,
                     np.empty((B, 0, self.config.quantization_channels), np.float32))
        state.t += T
        state.x = x
        return out

    def teacher_force(self, cond, x, state):
        cond = self._check(cond, state)
        B, T = cond.shape[:2]
        teacher = np.array(x, dtype=np.int64, order="C")
        if teacher.shape != (B, T):
            raise VocoderError(f"x: expected shape ({B}, {T}), got {teacher.shape}")
        A = self.config.quantization_channels
        if T and (teacher.min() < 0 or teacher.max() >= A):
            raise VocoderError(f"x: classes must lie in 0..{A - 1}")
        logits = np.empty((B, T, A), np.float32)
        nk = self._nk
        p = self.packed
        nk.run_chunk(p.w, p.wp, p.e0, p.bias, p.embed, cond, state.ring, self.slots,
                     self.schedule, state.t, np.array(state.x, dtype=np.int64), state.last,
                     np.zeros((B, 0), np.float32), np.zeros((B, 0), np.float64), teacher,
                     nk.MODE_TEACHER,
                     np.empty((B, 0), np.int64), logits)
        state.t += T
        return logits

    def _empty_teacher(self, batch: int) -> np.ndarray:
        if batch not in self._no_teacher:
            self._no_teacher[batch] = np.zeros((batch, 0), np.int64)
        return self._no_teacher[batch]

    def describe(self) -> dict[str, Any]:
        import numba

        return {"backend": self.name, "numba": numba.__version__, "threads": 1,
                "first_call_s": self.first_call_s, "weights_bytes": self.packed.nbytes,
                "precision": self.precision}
