"""The reference backend: the torch model's own ``step``, driven by the shared step loop.

Slow and exact; every faster backend is tested against it.
"""

from __future__ import annotations

import numpy as np

from vocoder.runtime.step_loop import HostStepBackend
from vocoder.runtime.torch_conditioning import to_host, torch_condition


class _TorchStep:
    """:meth:`WaveNet.step` on numpy arrays (shared with torch, no copies on the CPU)."""

    def __init__(self, model, device, torch, batch: int, layers: int, residual: int):
        self.model, self.device, self.torch = model, device, torch
        self.past = np.zeros((batch, layers, residual), np.float32)

    def __call__(self, x, cond_t, past):
        torch, dev = self.torch, self.device
        with torch.no_grad():
            logits, present = self.model.step(
                torch.as_tensor(np.asarray(x, dtype=np.int64)).to(dev),
                torch.as_tensor(np.asarray(cond_t)).to(dev),
                torch.as_tensor(past).to(dev))
        return logits.cpu().numpy(), present.cpu().numpy()


class TorchBackend(HostStepBackend):
    name = "torch"

    @staticmethod
    def available() -> tuple[bool, str]:
        try:
            import torch
        except ImportError as e:
            return False, f"torch is not installed ({e}): pip install torch"
        return True, f"torch {torch.__version__}"

    def __init__(self, bundle, device: str = "cpu", threads: int | None = None):
        super().__init__(bundle)
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = bundle.build_model().to(self.device)
        self._steps: dict[int, _TorchStep] = {}

    def condition(self, features, speaker, gc, start, stop, batch):
        return to_host(torch_condition(self.model, self.device, features, speaker, gc,
                                       start, stop, batch), batch)

    def context_step(self, block, state):
        torch, dev = self.torch, self.device
        with torch.no_grad():
            bias, new = self.model.context_step(
                torch.as_tensor(np.asarray(block, dtype=np.int64)).to(dev),
                torch.as_tensor(np.asarray(state, dtype=np.float32)).to(dev))
        return bias.cpu().numpy(), new.cpu().numpy()

    def step_function(self, batch, lane):
        if batch not in self._steps:
            cfg = self.config
            self._steps[batch] = _TorchStep(self.model, self.device, self.torch, batch,
                                            cfg.layers, cfg.residual_channels)
        return self._steps[batch]

    def describe(self):
        return {"backend": self.name, "device": str(self.device),
                "threads": self.torch.get_num_threads(), "torch": self.torch.__version__}
