"""GPU backends: ``cuda`` (the torch step module), ``triton`` (the whole step, gather,
scatter and sampling included, as one Triton kernel) and ``tensorrt`` (an engine from
``step.onnx``), all driving the same device-resident, graph-captured loop
(:mod:`vocoder.runtime.gpu_loop`).

Ring buffers, conditioning, uniforms, sampled classes and outputs are torch tensors on
the device; the next step's input never visits the host. Conditioning is computed on the
device straight into the engine's device buffer (:meth:`CudaBackend.cond_buffer`); the
host sees one upload of features and uniforms and one download of classes per chunk. Sampling is the
reference inverse CDF in float64 on the device.

``CudaBackend(bundle, device="cpu")`` runs the very same loop eagerly on the CPU (no
graphs): that is how the loop is tested on machines without a GPU.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from vocoder.bundle import STEP_ONNX
from vocoder.errors import VocoderError
from vocoder.runtime.backend import Backend, StepState
from vocoder.runtime.gpu_loop import GREEDY, SAMPLE, TEACHER, PeriodLoop, StepExecutor, TorchStep
from vocoder.runtime.sampling import check_temperature, is_per_sample

#: Precisions of the ``cuda`` backend's step (conditioning is always computed in float32).
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def cuda_status() -> tuple[bool, str]:
    """(usable, why): whether torch sees a CUDA GPU, and which."""
    if not torch.cuda.is_available():
        if torch.version.cuda is None:
            return False, (f"torch {torch.__version__} is a CPU-only build: install a CUDA "
                           "build of torch on a machine with an NVIDIA GPU")
        return False, (f"no CUDA GPU visible to torch {torch.__version__} (built for CUDA "
                       f"{torch.version.cuda}); check the driver and CUDA_VISIBLE_DEVICES")
    return True, (f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, "
                  f"torch {torch.__version__}")


def _with_gpu(library: tuple[bool, str], name: str) -> tuple[bool, str]:
    """(usable, why) for a backend that needs a CUDA GPU and a library whose own
    (usable, why) is ``library``: the GPU's reason first, since it matters most."""
    ok, why = cuda_status()
    ok_lib, why_lib = library
    if not ok:
        return False, why + ("" if ok_lib else f"; {name} is not installed either")
    return ok_lib, f"{why_lib} on {why}" if ok_lib else why_lib


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise VocoderError(f"device must be 'cuda', 'cuda:N' or 'cpu', got {device!r} "
                           f"({e})") from None
    if dev.type == "cuda":
        ok, why = cuda_status()
        if not ok:
            raise VocoderError(f"device {device!r}: {why}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise VocoderError(f"device {device!r}: only {torch.cuda.device_count()} "
                               "CUDA device(s) visible")
    elif dev.type != "cpu":
        raise VocoderError(f"device must be 'cuda', 'cuda:N' or 'cpu', got {device!r}")
    return dev


class CudaBackend(Backend):
    """The torch step module in a device-resident loop, CUDA-graph captured per period.

    device: "cuda" (default), "cuda:N", or "cpu" (eager, for tests); precision: "fp32",
    "fp16" or "bf16" (the step's weights, rings and conditioning); graphs: capture and
    replay CUDA graphs (default: on for CUDA; impossible on the CPU); threads: torch CPU
    threads (for the CPU device).
    """

    name = "cuda"
    prefers_folding = True

    @staticmethod
    def available() -> tuple[bool, str]:
        return cuda_status()

    def __init__(self, bundle, device: str = "cuda", precision: str = "fp32",
                 graphs: bool | None = None, threads: int | None = None):
        super().__init__(bundle)
        self.device = _device(device)
        self._check_precision(precision)
        self.precision = precision
        if graphs is None:
            graphs = self.device.type == "cuda"
        elif graphs and self.device.type != "cuda":
            raise VocoderError(f"CUDA graphs need a CUDA device, got {self.device}")
        if threads:
            torch.set_num_threads(threads)
        self.graphs = bool(graphs)
        self.model = bundle.build_model().to(self.device)  # float32: conditioning
        self.executor = self._executor()
        cfg = self.config
        self.loop = PeriodLoop(self.executor, self.layout.slots, self.layout.size,
                               cfg.residual_channels, cfg.gate_channels,
                               cfg.quantization_channels, self.device, graphs=self.graphs)

    def _check_precision(self, precision: str) -> None:
        if precision not in DTYPES:
            raise VocoderError(f"the {self.name} backend runs {', '.join(DTYPES)}, "
                               f"got precision={precision!r}")

    def _executor(self) -> StepExecutor:
        dtype = DTYPES[self.precision]
        model = self.model if dtype == torch.float32 else copy.deepcopy(self.model).to(dtype)
        return TorchStep(model, dtype)

    # -- conditioning -----------------------------------------------------------------
    def _condition(self, features, speaker, gc, start, stop, batch) -> torch.Tensor:
        """cond (B | 1, stop - start, L, G) float32 on the device."""
        t = lambda a, dt: None if a is None else torch.as_tensor(np.asarray(a), dtype=dt,
                                                                 device=self.device)
        with torch.no_grad():
            if features is None:
                return self.model.condition(None, t(speaker, torch.int64), stop - start,
                                            gc=t(gc, torch.float32), batch=batch)
            return self.model.condition(t(features, torch.float32), t(speaker, torch.int64),
                                        gc=t(gc, torch.float32))[:, start:stop]

    def condition(self, features, speaker, gc, start, stop, batch):
        c = self._condition(features, speaker, gc, start, stop, batch)
        c = c.to("cpu", torch.float32).numpy().copy()
        if c.shape[0] != batch:
            c = np.broadcast_to(c, (batch, *c.shape[1:])).copy()
        return c

    def condition_into(self, features, speaker, gc, start, stop, out):
        # Device to device: the engine's buffer lives on the GPU (cond_buffer).
        with torch.no_grad():
            out.copy_(self._condition(features, speaker, gc, start, stop, out.shape[0]))

    def cond_buffer(self, batch, steps):
        cfg = self.config
        return torch.empty((batch, steps, cfg.layers, cfg.gate_channels), dtype=torch.float32,
                           device=self.device)

    # -- the step loop ----------------------------------------------------------------
    def stream_chunk(self) -> int:
        # one captured period per chunk: a stream from t = 0 then only replays graphs,
        # never runs an eager tail (D_max = 512 samples is 32 ms at 16 kHz)
        return self.layout.period

    def _new_ring(self, batch):
        return self.loop.new_ring(batch)

    def _check(self, cond, state: StepState, other, what: str) -> tuple[int, int]:
        if cond.ndim != 4 or tuple(cond.shape[2:]) != (self.config.layers,
                                                       self.config.gate_channels):
            raise ValueError(f"cond must be (B, T, {self.config.layers}, "
                             f"{self.config.gate_channels}), got {tuple(cond.shape)}")
        B, T = int(cond.shape[0]), int(cond.shape[1])
        if B != state.batch:
            raise ValueError(f"cond has batch {B}, the state {state.batch}")
        if tuple(np.shape(other)) != (B, T):
            raise ValueError(f"{what} must be (B, T) = {(B, T)}, got {tuple(np.shape(other))}")
        return B, T

    def generate(self, cond, state, u, temperature):
        """cond (B, T, L, G) numpy (or a tensor already on the device); u (B, T) float32."""
        if is_per_sample(temperature):
            raise VocoderError(f"the {self.name} backend takes one temperature per run; "
                               "per-sample temperatures (voiced_temperature) run on the "
                               "CPU backends (onnxruntime, native, torch)")
        temperature = check_temperature(temperature)
        B, T = self._check(cond, state, u, "u")
        if T == 0:
            return np.empty((B, 0), np.int64)
        mode = GREEDY if temperature == 0.0 else SAMPLE
        with torch.no_grad():
            out = self.loop.run(state.ring, state.x, state.t, cond, mode, u=u,
                                temperature=temperature)
        state.t += T
        state.x = out[:, -1].copy()
        return out

    def teacher_force(self, cond, x, state):
        B, T = self._check(cond, state, x, "x")
        if T == 0:
            return np.empty((B, 0, self.config.quantization_channels), np.float32)
        with torch.no_grad():
            out = self.loop.run(state.ring, state.x, state.t, cond, TEACHER,
                                teacher=np.asarray(x, dtype=np.int64))
        state.t += T
        return out

    def close(self):
        self.loop.close()
        self.executor.close()

    def describe(self) -> dict[str, Any]:
        d = {"backend": self.name, "device": str(self.device), "precision": self.precision,
             "graphs": self.graphs, "torch": torch.__version__, "cuda": torch.version.cuda,
             **self.executor.describe()}
        if self.device.type == "cuda":
            d["gpu"] = torch.cuda.get_device_name(self.device)
        return d


class TensorRTBackend(CudaBackend):
    """``step.onnx`` as TensorRT engines (fp32 or fp16) in the same graph-captured loop.

    Engines are cached in ``BUNDLE/engines/`` (see :mod:`vocoder.runtime.trt_engine`);
    :meth:`build_engines` builds them ahead of time (``vocoder export --engine``), and any
    missing one is built on first use of its batch size. Conditioning runs in torch on
    the same GPU.
    """

    name = "tensorrt"

    @staticmethod
    def available() -> tuple[bool, str]:
        from vocoder.runtime.trt_engine import tensorrt_status

        return _with_gpu(tensorrt_status(), "TensorRT")

    def __init__(self, bundle, precision: str = "fp16", graphs: bool | None = None,
                 device: str = "cuda", threads: int | None = None):
        from vocoder.runtime.trt_engine import require_tensorrt

        require_tensorrt()  # the clearest error first: without it nothing here can run
        if _device(device).type != "cuda":
            raise VocoderError(f"the tensorrt backend needs a CUDA device, got {device!r}")
        super().__init__(bundle, device=device, precision=precision, graphs=graphs,
                         threads=threads)

    def _check_precision(self, precision: str) -> None:
        from vocoder.runtime.trt_engine import PRECISIONS

        if precision not in PRECISIONS:
            raise VocoderError(f"the tensorrt backend runs {' or '.join(PRECISIONS)}, "
                               f"got precision={precision!r}")

    def _executor(self) -> StepExecutor:
        import onnx

        from vocoder.runtime.trt_engine import ENGINES_DIR, TensorRTStep

        path = self.bundle.path / STEP_ONNX
        if not path.is_file():
            raise VocoderError(f"{self.bundle.path}: no {STEP_ONNX}; create it with "
                               f"`vocoder export {self.bundle.path}`")
        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False)
                .metadata_props}
        if meta.get("weights_sha256") != self.bundle.weights_sha256:
            raise VocoderError(f"{path} is stale: it was exported from other weights than "
                               f"model.safetensors; re-run `vocoder export {self.bundle.path}`")
        cfg = self.config
        return TensorRTStep(path, self.bundle.path / ENGINES_DIR, self.precision, cfg.layers,
                            cfg.residual_channels, cfg.gate_channels,
                            cfg.quantization_channels, self.device)

    def build_engines(self, batches) -> list:
        """Build (or find cached) engines for these batch sizes; returns their paths."""
        return [self.executor.build(int(b)) for b in batches]


class TritonBackend(CudaBackend):
    """The step as one fused Triton kernel (:mod:`vocoder.runtime.triton_step`) in the same
    graph-captured loop: one launch per step instead of 238 tensor ops, which bound
    the torch step on a GPU. fp32, fp16 or bf16 weights, rings and conditioning.

    device "cpu" runs the kernel in Triton's interpreter (``TRITON_INTERPRET=1`` set
    before Python imports triton): only for tests. block_batch, num_warps: the kernel's
    launch shape (see :class:`~vocoder.runtime.triton_step.TritonStep`).
    """

    name = "triton"

    @staticmethod
    def available() -> tuple[bool, str]:
        from vocoder.runtime.triton_step import triton_status

        return _with_gpu(triton_status(), "Triton")

    def __init__(self, bundle, device: str = "cuda", precision: str = "fp32",
                 graphs: bool | None = None, threads: int | None = None,
                 block_batch: int = 16, num_warps: int = 8):
        self._launch_shape = {"block_batch": block_batch, "num_warps": num_warps}
        super().__init__(bundle, device=device, precision=precision, graphs=graphs,
                         threads=threads)

    def _executor(self) -> StepExecutor:
        from vocoder.runtime.triton_step import TritonStep

        return TritonStep(self.model, DTYPES[self.precision], self.device,
                          **self._launch_shape)
