"""The ``cuda`` backend: the torch step module in the device-resident, graph-captured
loop (:mod:`vocoder.runtime.device_backend`), in fp32, fp16 or bf16."""

from __future__ import annotations

import copy

import torch

from vocoder.runtime.cuda_common import DTYPES, cuda_status
from vocoder.runtime.device_backend import DeviceLoopBackend
from vocoder.runtime.gpu_loop import StepExecutor, TorchStep


class CudaBackend(DeviceLoopBackend):
    """The torch step module on a CUDA device (or eagerly on the CPU, for tests)."""

    name = "cuda"

    @staticmethod
    def available() -> tuple[bool, str]:
        return cuda_status()

    def _executor(self) -> StepExecutor:
        dtype = DTYPES[self.precision]
        model = self.model if dtype == torch.float32 else copy.deepcopy(self.model).to(dtype)
        return TorchStep(model, dtype)
