"""ONNX Runtime for the backends that use it: sessions over a bundle's exported graphs,
checked to come from its current weights, ``condition.onnx`` as a backend's
conditioning and ``context_step.onnx`` as its context stack (the onnxruntime and native
backends share them)."""

from __future__ import annotations

import os

import numpy as np

from vocoder.bundle import CONDITION_ONNX, CONTEXT_ONNX
from vocoder.errors import VocoderError


def session_options(threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def open_sessions(bundle, threads: dict[str, int | None],
                  providers: list[str] | None = None) -> dict:
    """One InferenceSession per exported graph name in ``threads`` (name -> intra-op
    threads), each checked to come from the bundle's current weights."""
    import onnxruntime as ort

    bundle.exported(*threads)
    providers = providers or ["CPUExecutionProvider"]
    try:
        sessions = {n: ort.InferenceSession(str(bundle.path / n), session_options(t),
                                            providers=providers)
                    for n, t in threads.items()}
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise VocoderError(f"{bundle.path}: ONNX Runtime cannot load the exported graphs "
                           f"({e}); re-run `vocoder export {bundle.path}`") from None
    for n, s in sessions.items():
        bundle.check_fresh(bundle.path / n, s.get_modelmeta().custom_metadata_map
                           .get("weights_sha256"))
    return sessions


def providers_in_use(session, asked: list[str]) -> list[str]:
    """The session's providers; a VocoderError when one that was asked for did not start
    (ONNX Runtime falls back to the CPU silently)."""
    used = session.get_providers()
    lost = [p for p in asked if p not in used]
    if lost:
        raise VocoderError(f"ONNX Runtime could not start {', '.join(lost)} (running "
                           f"{', '.join(used)}); for CUDA install onnxruntime-gpu and the "
                           "CUDA libraries it needs")
    return used


class OrtConditioner:
    """``condition.onnx`` on ONNX Runtime: gate biases for a sample range, as
    :meth:`~vocoder.runtime.backend.Backend.condition` specifies."""

    def __init__(self, config, session):
        self.config = config
        self.session = session
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def open(cls, bundle, threads: int | None = None,
             providers: list[str] | None = None) -> OrtConditioner:
        """Load the bundle's condition.onnx (threads default: all cores)."""
        sess = open_sessions(bundle, {CONDITION_ONNX: threads or os.cpu_count()}, providers)
        return cls(bundle.config, sess[CONDITION_ONNX])

    def _feed(self, features, speaker, gc, start, stop) -> dict[str, np.ndarray]:
        feed = {"crop": np.array([start, stop], dtype=np.int64)}
        if "features" in self._inputs:
            feed["features"] = np.ascontiguousarray(features, dtype=np.float32)
        if "speaker" in self._inputs:
            feed["speaker"] = np.ascontiguousarray(speaker, dtype=np.int64).reshape(-1)
        if "gc" in self._inputs:
            feed["gc"] = np.ascontiguousarray(gc, dtype=np.float32).reshape(
                -1, self.config.gc_channels)
        return feed

    def __call__(self, features, speaker, gc, start, stop, batch) -> np.ndarray:
        """cond (batch, stop - start, L, G) float32, owned by the caller."""
        cond = self.session.run(["cond"], self._feed(features, speaker, gc, start, stop))[0]
        if cond.shape[0] != batch:
            cond = np.broadcast_to(cond, (batch, *cond.shape[1:])).copy()
        return cond

    def into(self, features, speaker, gc, start, stop, out: np.ndarray) -> None:
        """The same, written by ONNX Runtime straight into ``out`` (batch, stop - start,
        L, G) float32 C-contiguous (one copy of the whole tensor fewer)."""
        feed = self._feed(features, speaker, gc, start, stop)
        if "features" not in feed or feed["features"].shape[0] != out.shape[0]:
            out[:] = self(features, speaker, gc, start, stop, out.shape[0])
            return
        io = self.session.io_binding()
        for name, arr in feed.items():
            io.bind_cpu_input(name, arr)
        io.bind_output("cond", "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        self.session.run_with_iobinding(io)


class OrtConditioning:
    """``condition`` and ``condition_into`` of a backend whose conditioning is
    condition.onnx on ONNX Runtime: mixed into the backend, which sets
    ``self._conditioner`` (an :class:`OrtConditioner`)."""

    _conditioner: OrtConditioner

    def condition(self, features, speaker, gc, start, stop, batch):
        return self._conditioner(features, speaker, gc, start, stop, batch)

    def condition_into(self, features, speaker, gc, start, stop, out):
        self._conditioner.into(features, speaker, gc, start, stop, out)


class OrtContextStep:
    """``context_step.onnx`` on ONNX Runtime: the context stack's step, as
    :meth:`~vocoder.runtime.backend.Backend.context_step` specifies."""

    def __init__(self, session):
        self.session = session

    @classmethod
    def open(cls, bundle, providers: list[str] | None = None) -> OrtContextStep:
        """Load the bundle's context_step.onnx (one thread: it runs once per block)."""
        return cls(open_sessions(bundle, {CONTEXT_ONNX: 1}, providers)[CONTEXT_ONNX])

    def __call__(self, block, state) -> tuple[np.ndarray, np.ndarray]:
        bias, new = self.session.run(
            ["bias", "new_state"],
            {"block": np.ascontiguousarray(block, dtype=np.int64),
             "state": np.ascontiguousarray(state, dtype=np.float32)})
        return bias, new


class OrtContext:
    """``context_step`` of a backend whose context stack is context_step.onnx on ONNX
    Runtime: mixed into the backend, which sets ``self._context`` (an
    :class:`OrtContextStep`, or None for a model without a context stack)."""

    _context: OrtContextStep | None

    def context_step(self, block, state):
        if self._context is None:
            raise VocoderError("this model has no context stack (context_pool = 0)")
        return self._context(block, state)
