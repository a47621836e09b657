"""The ``triton`` backend: the whole step (gather, scatter and sampling included) as one
fused Triton kernel in the device-resident, graph-captured loop
(:mod:`vocoder.runtime.device_backend`)."""

from __future__ import annotations

from vocoder.runtime.cuda_common import DTYPES, with_gpu
from vocoder.runtime.device_backend import DeviceLoopBackend
from vocoder.runtime.gpu_loop import StepExecutor


class TritonBackend(DeviceLoopBackend):
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

        return with_gpu(triton_status(), "Triton")

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
