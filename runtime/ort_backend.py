"""The default backend: ``step.onnx`` once per step on ONNX Runtime, driven by the shared
step loop (:mod:`vocoder.runtime.step_loop`), with IOBinding over preallocated numpy
buffers (no allocation per step).

CPU execution provider by default; CUDA when onnxruntime-gpu is installed and asked for
(``providers=["CUDAExecutionProvider"]``): ONNX Runtime silently falls back to the CPU
when CUDA is unusable, so the providers actually in use are checked.
"""

from __future__ import annotations

import os

import numpy as np

from vocoder.bundle import CONDITION_ONNX, CONTEXT_ONNX, STEP_ONNX
from vocoder.errors import VocoderError
from vocoder.runtime.onnx_sessions import (
    OrtConditioner,
    OrtConditioning,
    OrtContext,
    OrtContextStep,
    open_sessions,
    providers_in_use,
)
from vocoder.runtime.step_loop import HostStepBackend


class OrtStep:
    """``step.onnx`` for a fixed batch size over an IOBinding: inputs are copied into the
    bound buffers (``past`` is gathered there directly), outputs are bound buffers that
    the next call overwrites."""

    def __init__(self, session, config, batch: int):
        L, R, G, A = config.layers, config.residual_channels, config.gate_channels, \
            config.quantization_channels
        self.x = np.zeros(batch, np.int64)
        self.cond_t = np.zeros((batch, L, G), np.float32)
        self.past = np.zeros((batch, L, R), np.float32)
        self.logits = np.zeros((batch, A), np.float32)
        self.present = np.zeros((batch, L, R), np.float32)
        self._io = io = session.io_binding()
        for name in ("x", "cond_t", "past"):
            b = getattr(self, name)
            io.bind_input(name, "cpu", 0, b.dtype, b.shape, b.ctypes.data)
        for name in ("logits", "present"):
            b = getattr(self, name)
            io.bind_output(name, "cpu", 0, b.dtype, b.shape, b.ctypes.data)
        self._run = session.run_with_iobinding

    def __call__(self, x, cond_t, past):
        self.x[...] = x
        self.cond_t[...] = cond_t
        if past is not self.past:
            self.past[...] = past
        self._run(self._io)
        return self.logits, self.present


class OrtBackend(OrtConditioning, OrtContext, HostStepBackend):
    name = "onnxruntime"
    prefetch_condition = True

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError as e:
            return False, f"onnxruntime is not installed ({e})"
        return True, f"onnxruntime {ort.__version__}, providers {ort.get_available_providers()}"

    def __init__(self, bundle, threads: int | None = None, cond_threads: int | None = None,
                 providers: list[str] | None = None, lanes: int | None = None):
        """threads: intra-op threads of the step session (default 1: a step is too small
        to split). cond_threads: for the conditioning session (default 1: it runs on a
        second thread, beside the step loop, so the two use both cores). lanes: a batch
        of at least ``2 * MIN_LANE_BATCH`` streams is split into two halves whose step
        loops run on two threads, one session call each per step (default: 2 on a
        machine with two or more cores, else 1)."""
        super().__init__(bundle)
        if lanes is not None and lanes not in (1, 2):
            raise VocoderError(f"lanes must be 1 or 2, got {lanes!r}")
        self.lanes = lanes or (2 if (os.cpu_count() or 1) >= 2 else 1)
        providers = providers or ["CPUExecutionProvider"]
        graphs = {CONDITION_ONNX: cond_threads or 1, STEP_ONNX: threads}
        if self.config.context_pool:
            graphs[CONTEXT_ONNX] = 1
        sessions = open_sessions(bundle, graphs, providers)
        self.step_sess = sessions[STEP_ONNX]
        self.providers = providers_in_use(self.step_sess, providers)
        self.threads = threads or 1
        self._conditioner = OrtConditioner(bundle.config, sessions[CONDITION_ONNX])
        self._context = OrtContextStep(sessions[CONTEXT_ONNX]) \
            if CONTEXT_ONNX in sessions else None
        self._steps: dict[tuple[int, int], OrtStep] = {}

    def step_function(self, batch, lane):
        key = (batch, lane)
        if key not in self._steps:
            self._steps[key] = OrtStep(self.step_sess, self.config, batch)
        return self._steps[key]

    def close(self):
        self._steps.clear()
        super().close()

    def describe(self):
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__,
                "providers": self.providers, "threads": self.threads, "lanes": self.lanes}
