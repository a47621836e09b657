"""The GPU backends' common part: a step executor in the device-resident, graph-captured
loop of :mod:`vocoder.runtime.gpu_loop`, with torch conditioning on the same device.

Ring buffers, conditioning, uniforms, sampled classes and outputs are torch tensors on
the device; the next step's input never visits the host. Conditioning is computed on the
device straight into the engine's device buffer (:meth:`DeviceLoopBackend.cond_buffer`);
the host sees one upload of features and uniforms and one download of classes per chunk.
Sampling is the reference inverse CDF in float64 on the device.

On ``device="cpu"`` the very same loop runs eagerly (no graphs): that is how the loop is
tested on machines without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from vocoder.errors import VocoderError
from vocoder.runtime.backend import Backend, StepState
from vocoder.runtime.cuda_common import DTYPES, parse_device
from vocoder.runtime.gpu_loop import GREEDY, SAMPLE, TEACHER, PeriodLoop, StepExecutor
from vocoder.runtime.sampling import check_temperature, is_per_sample
from vocoder.runtime.torch_conditioning import to_host, torch_condition


class DeviceLoopBackend(Backend):
    """A step executor (:class:`~vocoder.runtime.gpu_loop.StepExecutor`, made by
    :meth:`_executor`) in the device-resident loop, CUDA-graph captured per period;
    conditioning is the torch model's, on the same device.

    device: "cuda" (default), "cuda:N", or "cpu" (eager, for tests); precision: "fp32",
    "fp16" or "bf16" (the step's weights, rings and conditioning); graphs: capture and
    replay CUDA graphs (default: on for CUDA; impossible on the CPU); threads: torch CPU
    threads (for the CPU device).
    """

    def __init__(self, bundle, device: str = "cuda", precision: str = "fp32",
                 graphs: bool | None = None, threads: int | None = None):
        super().__init__(bundle)
        self.device = parse_device(device)
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
        """The step this backend runs (after ``self.model`` and ``self.precision`` are set)."""
        raise NotImplementedError

    # -- conditioning -----------------------------------------------------------------
    def condition(self, features, speaker, gc, start, stop, batch):
        return to_host(torch_condition(self.model, self.device, features, speaker, gc,
                                       start, stop, batch), batch)

    def condition_into(self, features, speaker, gc, start, stop, out):
        # Device to device: the engine's buffer lives on the GPU (cond_buffer).
        out.copy_(torch_condition(self.model, self.device, features, speaker, gc, start,
                                  stop, out.shape[0]))

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
