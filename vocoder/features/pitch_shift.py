"""Pitch-shift a recording with WORLD, keeping its spectral envelope and timing.

Used to augment the mel predictor's training data (:mod:`vocoder.train.mel_predictor`):
the corpus holds each speaker over a narrow F0 range, so a predictor trained on it alone
keeps its harmonics near the speaker's usual pitch when the F0 input is moved, and the
post-filter then pulls the output's pitch back. WORLD (pyworld) analyses the recording
with the dataset's own F0 track (CheapTrick envelope, D4C aperiodicity) and resynthesises
it with that F0 scaled, so the frame features stay aligned and only ``log_f0`` moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from vocoder.errors import VocoderError


def world_pitch_shifts(audio: np.ndarray, sample_rate: int, hop_length: int,
                       log_f0: np.ndarray, voiced: np.ndarray,
                       semitones: Sequence[float]) -> list[np.ndarray]:
    """Resynthesise ``audio`` once per shift in ``semitones``, from one WORLD analysis.

    Args:
        audio: (N,) float mono recording.
        log_f0: (T,) natural-log F0 per frame of ``hop_length`` samples (read where voiced).
        voiced: (T,) bool or 0/1 voicing per frame.
        semitones: the shifts; 0 still resynthesises (WORLD's own copy).

    Returns:
        one (N,) float64 array per shift, each the same length as ``audio``.
    """
    from vocoder.features.f0 import _import_pyworld

    x = np.ascontiguousarray(audio, dtype=np.float64)
    lf, v = np.asarray(log_f0, np.float64), np.asarray(voiced) > 0.5
    if x.ndim != 1 or x.size == 0:
        raise VocoderError(f"audio must be mono (N,) and not empty, got shape {x.shape}")
    if lf.ndim != 1 or lf.shape != v.shape or lf.size == 0:
        raise VocoderError(f"log_f0 and voiced must be (T,) of one length, got {lf.shape} "
                           f"and {v.shape}")
    if not np.all(np.isfinite(lf[v])):
        raise VocoderError("log_f0 has NaN or Inf in voiced frames")
    pw = _import_pyworld()
    period_ms = 1000.0 * hop_length / sample_rate
    f0 = np.where(v, np.exp(np.where(v, lf, 0.0)), 0.0)
    t = np.arange(f0.size) * (period_ms / 1000.0)
    # The analysis costs several resyntheses, so it is shared by all the shifts.
    envelope = pw.cheaptrick(x, f0, t, sample_rate)
    aperiodicity = pw.d4c(x, f0, t, sample_rate)
    out = []
    for st in semitones:
        y = pw.synthesize(f0 * 2.0 ** (st / 12.0), envelope, aperiodicity, sample_rate,
                          period_ms)
        out.append(np.pad(y, (0, max(0, x.size - y.size)))[:x.size])
    return out


def shift_log_f0(features: np.ndarray, index: int, semitones: float) -> np.ndarray:
    """(T, D) frame features with column ``index`` (log F0) moved by ``semitones``: a copy."""
    out = np.array(features, dtype=np.float32, copy=True)
    out[:, index] += math.log(2.0) * semitones / 12.0
    return out
