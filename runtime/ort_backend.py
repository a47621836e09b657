"""The default backend: ``step.onnx`` once per step on ONNX Runtime, with IOBinding over
preallocated numpy buffers (no allocation per step) and ring buffers in numpy.

CPU execution provider by default; CUDA when onnxruntime-gpu is installed and asked for
(``providers=["CUDAExecutionProvider"]``): ONNX Runtime silently falls back to the CPU
when CUDA is unusable, so the providers actually in use are checked.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from vocoder.bundle import CONDITION_ONNX, STEP_ONNX
from vocoder.errors import VocoderError
from vocoder.runtime.backend import Backend, StepState
from vocoder.runtime.sampling import inverse_temperatures, is_per_sample, sample_inv

#: Smallest lane: a batch of at least twice this many streams is split in two.
MIN_LANE_BATCH = 8


def _sampler():
    """The sampler the step loop calls: numba's compiled one when numba is installed (the
    same classes as :func:`sampling.sample_inv`, tested so; it releases the GIL), else
    numpy's."""
    try:
        from vocoder.runtime import native_kernels as nk
    except Exception:  # noqa: BLE001 (no numba, or a numba that cannot load: numpy's)
        return sample_inv

    def compiled(logits, u, inv):
        return nk.sample_rows(logits, np.ascontiguousarray(u, dtype=np.float32), inv)
    return compiled


def _session_options(threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads = threads or 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return opts


def require_exported(bundle, names) -> dict[str, Path]:
    """Paths of the exported graphs ``names`` in ``bundle``; a VocoderError saying how to
    create them when any is missing."""
    paths = {n: bundle.path / n for n in names}
    missing = [n for n, p in paths.items() if not p.is_file()]
    if missing:
        raise VocoderError(f"{bundle.path}: no {' / '.join(missing)}; create them with "
                           f"`vocoder export {bundle.path}`")
    return paths


def open_sessions(bundle, threads: dict[str, int | None],
                  providers: list[str] | None = None) -> dict:
    """One InferenceSession per exported graph name in ``threads`` (name -> intra-op
    threads), each checked to come from the bundle's current weights."""
    import onnxruntime as ort

    providers = providers or ["CPUExecutionProvider"]
    try:
        sessions = {n: ort.InferenceSession(str(bundle.path / n), _session_options(t),
                                            providers=providers)
                    for n, t in threads.items()}
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph types
        raise VocoderError(f"{bundle.path}: ONNX Runtime cannot load the exported graphs "
                           f"({e}); re-run `vocoder export {bundle.path}`") from None
    for n, s in sessions.items():
        got = s.get_modelmeta().custom_metadata_map.get("weights_sha256")
        if got != bundle.weights_sha256:
            raise VocoderError(
                f"{bundle.path / n} is stale: it was exported from other weights than "
                f"model.safetensors; re-run `vocoder export {bundle.path}`")
    return sessions


class OrtConditioner:
    """``condition.onnx`` on ONNX Runtime: gate biases for a sample range, as
    :meth:`Backend.condition` specifies. Shared by every backend that runs the
    conditioning through ONNX Runtime (this one and the native backend)."""

    def __init__(self, config, session):
        self.config = config
        self.session = session
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def open(cls, bundle, threads: int | None = None,
             providers: list[str] | None = None) -> OrtConditioner:
        """Load the bundle's condition.onnx (threads default: all cores)."""
        require_exported(bundle, (CONDITION_ONNX,))
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
    """``condition`` and ``condition_into`` through ``self._conditioner`` (an
    :class:`OrtConditioner`), for the backends whose conditioning is condition.onnx on
    ONNX Runtime (this one and the native backend)."""

    _conditioner: OrtConditioner

    def condition(self, features, speaker, gc, start, stop, batch):
        return self._conditioner(features, speaker, gc, start, stop, batch)

    def condition_into(self, features, speaker, gc, start, stop, out):
        self._conditioner.into(features, speaker, gc, start, stop, out)


class OrtBackend(OrtConditioning, Backend):
    name = "onnxruntime"
    prefers_folding = True
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
        self._sample = _sampler()
        self._pool: ThreadPoolExecutor | None = None
        require_exported(bundle, (CONDITION_ONNX, STEP_ONNX))
        providers = providers or ["CPUExecutionProvider"]
        sessions = open_sessions(bundle, {CONDITION_ONNX: cond_threads or 1,
                                          STEP_ONNX: threads}, providers)
        self.cond_sess, self.step_sess = sessions[CONDITION_ONNX], sessions[STEP_ONNX]
        self.providers = self.step_sess.get_providers()
        # ONNX Runtime falls back to the CPU silently when a provider cannot start.
        lost = [p for p in providers if p not in self.providers]
        if lost:
            raise VocoderError(f"ONNX Runtime could not start {', '.join(lost)} (running "
                               f"{', '.join(self.providers)}); for CUDA install "
                               "onnxruntime-gpu and the CUDA libraries it needs")
        self.threads = threads or 1
        self._conditioner = OrtConditioner(bundle.config, self.cond_sess)
        self._bufs: dict[int, tuple] = {}

    # -- step loop --------------------------------------------------------------------
    def _binding(self, batch: int, lane: int = 0):
        """IOBinding over preallocated buffers for this batch size and lane, made once."""
        key = (batch, lane)
        if key not in self._bufs:
            cfg = self.config
            L, R, G, A = cfg.layers, cfg.residual_channels, cfg.gate_channels, \
                cfg.quantization_channels
            bufs = {"x": np.zeros(batch, np.int64),
                    "cond_t": np.zeros((batch, L, G), np.float32),
                    "past": np.zeros((batch, L, R), np.float32),
                    "logits": np.zeros((batch, A), np.float32),
                    "present": np.zeros((batch, L, R), np.float32)}
            io = self.step_sess.io_binding()
            for name in ("x", "cond_t", "past"):
                b = bufs[name]
                io.bind_input(name, "cpu", 0, b.dtype, b.shape, b.ctypes.data)
            for name in ("logits", "present"):
                b = bufs[name]
                io.bind_output(name, "cpu", 0, b.dtype, b.shape, b.ctypes.data)
            self._bufs[key] = (io, bufs)
        return self._bufs[key]

    def _loop(self, cond, state: StepState, u=None, temperature=1.0, teacher=None):
        B, T = cond.shape[:2]
        A = self.config.quantization_channels
        out = np.empty((B, T), np.int64) if teacher is None else \
            np.empty((B, T, A), np.float32)
        x = np.array(state.x, dtype=np.int64)
        if self.lanes > 1 and B >= 2 * MIN_LANE_BATCH:
            # Streams are independent: two halves on two threads, one session (ONNX
            # Runtime's Run is thread-safe and releases the GIL).
            h = B // 2
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="vocoder-lane")

            def lane(a, b, k):
                self._lane(cond[a:b], state.ring[a:b], x[a:b], state.t, out[a:b], k,
                           None if u is None else u[a:b],
                           temperature[a:b] if is_per_sample(temperature) else temperature,
                           None if teacher is None else teacher[a:b])
            second = self._pool.submit(lane, h, B, 1)
            lane(0, h, 0)
            second.result()
        else:
            self._lane(cond, state.ring, x, state.t, out, 0, u, temperature, teacher)
        state.t += T
        if teacher is None:
            state.x = x
        return out

    def _lane(self, cond, ring, x_io, t0, out, lane, u, temperature, teacher):
        """T steps of the streams in ``ring`` (a view of the state's ring, written in
        place); x_io (B,) previous classes, updated in place when sampling; ``out``
        (B, T) classes, or (B, T, A) logits under teacher forcing."""
        B, T = cond.shape[:2]
        io, bufs = self._binding(B, lane)
        x, cond_t, past, logits, present = (bufs[k] for k in
                                            ("x", "cond_t", "past", "logits", "present"))
        slots_table, period = self.layout.slots, self.layout.period
        run = self.step_sess.run_with_iobinding
        sample_ = self._sample
        # One contiguous row of uniforms (and inverse temperatures) per step, transposed
        # once per chunk.
        u_rows = None if u is None else np.ascontiguousarray(u.T, dtype=np.float32)
        inv_rows = None if u is None else np.ascontiguousarray(
            inverse_temperatures(temperature, B, T).T)
        x[:] = x_io
        for i in range(T):
            slots = slots_table[(t0 + i) % period]
            np.take(ring, slots, axis=1, out=past)
            cond_t[:] = cond[:, i]
            if teacher is not None:
                x[:] = teacher[:, i]
            run(io)
            ring[:, slots] = present
            if teacher is None:
                x[:] = sample_(logits, u_rows[i], inv_rows[i])
                out[:, i] = x
            else:
                out[:, i] = logits
        if teacher is None:
            x_io[:] = x

    def generate(self, cond, state, u, temperature):
        return self._loop(cond, state, u=u, temperature=temperature)

    def teacher_force(self, cond, x, state):
        return self._loop(cond, state, teacher=np.asarray(x, dtype=np.int64))

    def close(self):
        self._bufs.clear()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def describe(self):
        import onnxruntime as ort

        return {"backend": self.name, "onnxruntime": ort.__version__,
                "providers": self.providers, "threads": self.threads, "lanes": self.lanes}
