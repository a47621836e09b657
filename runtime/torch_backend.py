"""The reference backend: the torch model's own ``step`` in a Python loop.

Slow and exact; every faster backend is tested against it.
"""

from __future__ import annotations

import numpy as np

from vocoder.runtime.backend import Backend, StepState
from vocoder.runtime.sampling import inverse_temperatures, sample_inv


class TorchBackend(Backend):
    name = "torch"
    prefers_folding = False

    def __init__(self, bundle, device: str = "cpu", threads: int | None = None):
        super().__init__(bundle)
        import torch

        self.torch = torch
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = bundle.build_model().to(self.device)
        self._slots = torch.from_numpy(np.array(self.layout.slots)).to(self.device)

    def condition(self, features, speaker, gc, start, stop, batch):
        torch = self.torch
        t = lambda a, dt: None if a is None else torch.as_tensor(a, dtype=dt, device=self.device)
        with torch.no_grad():
            f = t(features, torch.float32)
            if f is None:
                c = self.model.condition(None, t(speaker, torch.int64), stop - start,
                                         gc=t(gc, torch.float32), batch=batch)
            else:
                c = self.model.condition(f, t(speaker, torch.int64), gc=t(gc, torch.float32))
                c = c[:, start:stop]
        return c.to("cpu", torch.float32).numpy().copy()

    def _new_ring(self, batch):
        return self.model.init_ring(batch)

    def _loop(self, cond, state: StepState, u=None, temperature=1.0, teacher=None):
        torch = self.torch
        B, T = cond.shape[:2]
        cond_t = torch.from_numpy(np.ascontiguousarray(cond)).to(self.device)
        ring = state.ring
        out = np.empty((B, T), np.int64) if teacher is None else None
        logits_all = [] if teacher is not None else None
        x = torch.from_numpy(state.x).to(self.device)
        inv = None if teacher is not None else inverse_temperatures(temperature, B, T)
        with torch.no_grad():
            for i in range(T):
                slots = self._slots[(state.t + i) % self.layout.period]
                if teacher is not None:
                    x = torch.from_numpy(teacher[:, i]).to(self.device)
                logits, present = self.model.step(x, cond_t[:, i], ring[:, slots])
                ring[:, slots] = present
                if teacher is None:
                    cls = sample_inv(logits.cpu().numpy(), u[:, i], inv[:, i])
                    out[:, i] = cls
                    x = torch.from_numpy(cls).to(self.device)
                else:
                    logits_all.append(logits.cpu().numpy())
        state.t += T
        if teacher is None:
            state.x = out[:, -1].copy()
            return out
        return np.stack(logits_all, axis=1)

    def generate(self, cond, state, u, temperature):
        return self._loop(cond, state, u=u, temperature=temperature)

    def teacher_force(self, cond, x, state):
        return self._loop(cond, state, teacher=np.asarray(x, dtype=np.int64))

    def describe(self):
        return {"backend": self.name, "device": str(self.device),
                "threads": self.torch.get_num_threads(), "torch": self.torch.__version__}
