"""Conditioning for any sample range of one utterance, from a few frames of context.

A 10-minute utterance never materialises a 10-minute ``cond``: each chunk runs the
backend's ``condition`` on the frames it needs plus
:func:`vocoder.config.cond_context_frames` on each side, which makes the chunk equal the
whole-utterance result.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from vocoder.config import cond_context_frames
from vocoder.errors import VocoderError
from vocoder.excitation import append_phase, frame_phase, log_f0_column


@dataclass(frozen=True)
class Window:
    """What ``condition`` must run for samples ``[s0, s1)``: frames ``f0:f1``, the crop
    ``start:stop`` of their upsampled samples, and ``pad`` zero samples past the end."""

    f0: int
    f1: int
    start: int
    stop: int
    pad: int


class Conditioner:
    """What one utterance is conditioned on, and the frame windows behind any sample range
    of it; a backend computes the cond (:func:`condition_batch`).

    config: the model's; features (Tf, D) float32, or None; ``normalize`` maps a slice of
    them to what the model was trained on (applied per chunk, so a long input is never
    copied whole); speaker an
    int or None; gc (gc_channels,) or None. Ranges past the end are padded with zeros
    (the extra samples are generated and discarded by the caller).
    """

    def __init__(self, config, features: np.ndarray | None, speaker: int | None,
                 gc: np.ndarray | None, n_samples: int, normalize=None,
                 vuv_feature: int | None = None):
        cfg = config
        self.cfg = cfg
        self.features = features
        self.normalize = normalize
        self.speaker = None if speaker is None else np.array([speaker], dtype=np.int64)
        self.gc = None if gc is None else np.asarray(gc, dtype=np.float32)[None]
        self.n_samples = n_samples
        self.context = cond_context_frames(cfg)
        # The excitation's running phase, once for the whole utterance (one float a
        # frame): every window then carries its own start phase exactly.
        self.phase = None if not cfg.excitation else frame_phase(
            log_f0_column(features, cfg, normalized=normalize is None), cfg)
        # Which feature column is the voicing flag (for a lower voiced temperature).
        self.vuv_feature = vuv_feature if vuv_feature is not None else (
            cfg.vuv_feature if cfg.excitation else None)
        # Without local conditioning the bias is the same for every sample: computed once
        # per backend, on first use.
        self._constant: tuple | None = None

    def window(self, s0: int, s1: int) -> Window | None:
        """The frames and crop behind ``[s0, s1)``; None when no ``condition`` call is
        needed (no local conditioning, or entirely past the end)."""
        e = min(s1, self.n_samples)
        if not self.cfg.cond_channels or e <= s0:
            return None
        hop = self.cfg.hop_length
        f0 = max(0, s0 // hop - self.context)
        f1 = min(self.features.shape[0], math.ceil(e / hop) + self.context)
        return Window(f0, f1, s0 - f0 * hop, e - f0 * hop, s1 - e)

    def frames(self, w: Window) -> np.ndarray:
        """The model's conditioning input for a window: normalised features
        (f1 - f0, D), with the frame-phase column (D + 1) when the model has an
        excitation input."""
        f = self.features[w.f0:w.f1]
        f = f if self.normalize is None else self.normalize(f)
        return f if self.phase is None else append_phase(f, self.phase[w.f0:w.f1])

    def require_voicing(self) -> None:
        """Raise unless :meth:`voicing` can answer (the features have a voicing flag)."""
        if self.vuv_feature is None or self.features is None:
            raise VocoderError("a voiced temperature needs a voicing feature ('vuv'), "
                               "and this model's features have none")

    def voicing(self, s0: int, s1: int) -> np.ndarray:
        """(s1 - s0,) bool: whether each sample's frame is voiced (False past the end)."""
        self.require_voicing()
        hop = self.cfg.hop_length
        out = np.zeros(s1 - s0, bool)
        e = min(s1, self.n_samples)
        if e > s0:
            frames = np.arange(s0, e) // hop
            out[: e - s0] = self.features[frames, self.vuv_feature] > 0.5
        return out

    def fill(self, backend, s0: int, s1: int, out: np.ndarray) -> None:
        """Write cond for ``[s0, s1)`` into ``out`` (s1 - s0, L, G) without a window: the
        constant bias of a model without local conditioning, else zeros (past the end)."""
        if self.cfg.cond_channels:
            put(out, 0.0)
            return
        if self._constant is None or self._constant[0] is not backend:
            bias = backend.condition(None, self.speaker, self.gc, 0, 1, 1)[0, 0]
            self._constant = (backend, bias)
        put(out, self._constant[1])

    def compute(self, backend, s0: int, s1: int) -> np.ndarray:
        """(s1 - s0, L, G) float32 from ``backend``."""
        return condition_batch(backend, [(self, s0, s1)])[0]


def condition_batch(backend, requests, out: np.ndarray | None = None) -> np.ndarray:
    """cond for several ranges at once: ``requests`` is a list of (Conditioner, s0, s1)
    with equal ``s1 - s0``. Returns (len(requests), s1 - s0, L, G) float32.

    Ranges whose windows have the same shape go through one batched ``condition`` call
    (one per utterance edge case, one for all the interior ones), each row with its own
    utterance's speaker and vector. ``out`` (a buffer reused across chunks, so its pages
    are already mapped) receives the result; without it, when one call covers every row,
    that call's output is returned as it is.
    """
    groups, fills = defaultdict(list), []
    for b, (cond, s0, s1) in enumerate(requests):
        w = cond.window(s0, s1)
        if w is None:
            fills.append((b, cond, s0, s1))
        else:
            groups[(w.f1 - w.f0, w.start, w.stop)].append((b, cond, w))
    if out is None and len(groups) == 1 and not fills:
        (_, start, stop), members = next(iter(groups.items()))
        if not any(w.pad for _, _, w in members):
            return _run_group(backend, start, stop, members)
    if out is None:
        cfg, n = requests[0][0].cfg, requests[0][2] - requests[0][1]
        out = np.empty((len(requests), n, cfg.layers, cfg.gate_channels), np.float32)
    for b, cond, s0, s1 in fills:
        cond.fill(backend, s0, s1, out[b])
    for (_, start, stop), members in groups.items():
        b0, m = members[0][0], stop - start
        dest = out[b0:b0 + len(members)]
        if (m == out.shape[1] and _contiguous(dest)
                and [b for b, _, _ in members] == list(range(b0, b0 + len(members)))):
            # Consecutive full rows (the interior segments of a fold): written in place.
            _run_group(backend, start, stop, members, dest)
            continue
        c = _run_group(backend, start, stop, members)
        for row, (b, _, w) in enumerate(members):
            put(out[b, :m], c[row])
            if w.pad:
                out[b, m:] = 0.0
    return out


def put(dst, src) -> None:
    """``dst[...] = src`` (broadcasting) for a numpy or torch ``dst`` (a backend's
    :meth:`~vocoder.runtime.backend.Backend.cond_buffer`) and a numpy or scalar ``src``."""
    if isinstance(dst, np.ndarray) or np.isscalar(src):
        dst[...] = src
    else:
        import torch

        dst.copy_(torch.as_tensor(np.asarray(src)))


def _contiguous(a) -> bool:
    """Whether a numpy array or a torch tensor is one contiguous block."""
    flags = getattr(a, "flags", None)
    return flags.c_contiguous if flags is not None else a.is_contiguous()


def _run_group(backend, start: int, stop: int, members, out=None) -> np.ndarray | None:
    feats = np.stack([c.frames(w) for _, c, w in members])
    first = members[0][1]
    spk = None if first.speaker is None else np.concatenate([c.speaker for _, c, _ in members])
    gc = None if first.gc is None else np.concatenate([c.gc for _, c, _ in members])
    if out is not None:
        return backend.condition_into(feats, spk, gc, start, stop, out)
    return backend.condition(feats, spk, gc, start, stop, len(members))
