"""The torch model's ``condition`` for a sample range, as backends that run it call it
(the torch backend on the CPU, the GPU backends on their device)."""

from __future__ import annotations

import numpy as np


def torch_condition(model, device, features, speaker, gc, start: int, stop: int,
                    batch: int):
    """cond (B | 1, stop - start, L, G) float32 tensor on ``device``.

    features (B, Tf, D) or None, speaker (B,) or None, gc (B, gc_channels) or None, as
    :meth:`~vocoder.runtime.backend.Backend.condition` receives them."""
    import torch

    t = lambda a, dt: None if a is None else torch.as_tensor(np.asarray(a), dtype=dt,
                                                             device=device)
    with torch.no_grad():
        if features is None:
            # detach: with no speaker and no gc this is a view of the gate_bias parameter,
            # which still requires grad.
            return model.condition(None, t(speaker, torch.int64), stop - start,
                                   gc=t(gc, torch.float32), batch=batch).detach()
        return model.condition(t(features, torch.float32), t(speaker, torch.int64),
                               gc=t(gc, torch.float32))[:, start:stop]


def to_host(cond, batch: int) -> np.ndarray:
    """A (B | 1, T, L, G) tensor as a (batch, T, L, G) float32 numpy array of its own."""
    import torch

    c = cond.to("cpu", torch.float32).numpy()
    return np.broadcast_to(c, (batch, *c.shape[1:])).copy()
