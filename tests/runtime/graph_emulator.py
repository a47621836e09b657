"""A CPU stand-in for a captured CUDA graph, faithful in what matters for correctness.

A CUDA graph records kernels with their arguments fixed at capture: the same memory is
read and written at every replay, Python is not run again, and nothing may wait for the
host. :class:`EmulatedGraph` records every aten op that a function runs (through a
``TorchDispatchMode``) together with the tensors it read and produced; replay re-runs the
ops on those same tensors and writes each result into the tensor captured for it. So a
loop that depends on Python values that change between replays, or on memory that is
not static, gives different results under replay than eagerly, as it would on a GPU.
Ops that need the host (``.item()``, ``nonzero``, tensors made from Python data) fail the
capture, as CUDA's stream capture does.

Kernels launched outside torch (a Triton kernel) are recorded by wrapping the Python
callable that launches them: :meth:`EmulatedGraph.capture` takes ``launchers``, (object,
attribute) pairs whose calls are recorded with their arguments and replayed as calls.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

#: Ops that synchronise with the host or read device data on the host: CUDA stream
#: capture rejects them.
HOST_SYNC = {
    torch.ops.aten._local_scalar_dense.default, torch.ops.aten.item.default,
    torch.ops.aten.nonzero.default, torch.ops.aten.is_nonzero.default,
    torch.ops.aten.equal.default, torch.ops.aten.lift_fresh.default,
    torch.ops.aten.masked_select.default, torch.ops.aten.unique_consecutive.default,
    torch.ops.aten._unique2.default,
}


class HostSyncInCapture(AssertionError):
    pass


class _Recorder(TorchDispatchMode):
    def __init__(self, tape: list):
        super().__init__()
        self.tape = tape

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in HOST_SYNC:
            raise HostSyncInCapture(f"{func} needs the host: it cannot be graph-captured")
        out = func(*args, **kwargs)
        self.tape.append(("op", func, args, kwargs, out))
        return out


def _write_into(captured, fresh) -> None:
    if isinstance(captured, torch.Tensor):
        if captured.data_ptr() != fresh.data_ptr() or captured.stride() != fresh.stride():
            captured.copy_(fresh)
    elif isinstance(captured, (tuple, list)):
        for c, f in zip(captured, fresh):
            _write_into(c, f)


class EmulatedGraph:
    """Record once with :meth:`capture`, then :meth:`replay` any number of times."""

    def __init__(self):
        self.tape: list = []
        self.replays = 0

    def capture(self, fn: Callable[[], None], launchers=()) -> None:
        originals = []
        for obj, name in launchers:
            real = getattr(obj, name)
            originals.append((obj, name, name in vars(obj), real))

            def recorded(*args, _real=real, **kwargs):
                self.tape.append(("call", _real, args, kwargs, None))
                with _disable_current_modes():  # its own torch ops belong to the launch
                    return _real(*args, **kwargs)

            setattr(obj, name, recorded)
        try:
            with _Recorder(self.tape):
                fn()
        finally:
            for obj, name, own, real in originals:
                if own:
                    setattr(obj, name, real)
                else:
                    delattr(obj, name)

    def replay(self) -> None:
        self.replays += 1
        for kind, func, args, kwargs, out in self.tape:
            fresh = func(*args, **kwargs)
            if kind == "op":
                _write_into(out, fresh)


def emulate_graphs(monkeypatch, loop, launchers=()) -> None:
    """Make a :class:`~vocoder.runtime.gpu_loop.PeriodLoop` on the CPU capture and replay
    :class:`EmulatedGraph` s where it would use CUDA graphs: the same warm-up, one capture
    per (batch size, mode, ring), stored where the real graphs are."""

    def graph(buf, ring, mode):
        key = (mode, ring.data_ptr())
        if key not in buf.graphs:
            saved = ring.clone()
            loop._steps(buf, ring, min(2, loop.period), mode)  # warm-up, as before a capture
            g = EmulatedGraph()
            g.capture(lambda: loop._steps(buf, ring, loop.period, mode), launchers)
            ring.copy_(saved)
            buf.graphs[key] = g
            loop.captures += 1
        return buf.graphs[key]

    monkeypatch.setattr(loop, "use_graphs", True)
    monkeypatch.setattr(loop, "_graph", graph)
