"""Frame logits -> one phone per frame.

With ``switch_penalty`` = 0 this is the frame-wise argmax. A penalty > 0 (in nats) finds
the frame sequence that maximises the summed log-posteriors minus the penalty for every
change of phone (Viterbi over a phone loop with uniform transitions): short flickers
between two phones, which the collapsed sequence would count as insertions, are
smoothed away unless the posteriors favour them by more than the penalty.
"""

from __future__ import annotations

import numpy as np


def best_path(log_probs: np.ndarray, switch_penalty: float = 0.0) -> np.ndarray:
    """log_probs (Tf, P) -> int64 (Tf,) classes; see the module docstring."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if switch_penalty < 0 or not np.isfinite(switch_penalty):
        raise ValueError(f"switch_penalty must be a finite number >= 0, got {switch_penalty}")
    if switch_penalty == 0 or len(log_probs) == 0:
        return log_probs.argmax(-1).astype(np.int64)
    T, P = log_probs.shape
    back = np.empty((T, P), np.int64)
    score = log_probs[0].copy()
    stay_index = np.arange(P)
    for t in range(1, T):
        best = int(score.argmax())
        switch = score[best] - switch_penalty
        stay = score >= switch
        back[t] = np.where(stay, stay_index, best)
        score = np.where(stay, score, switch) + log_probs[t]
    path = np.empty(T, np.int64)
    path[-1] = int(score.argmax())
    for t in range(T - 1, 0, -1):
        path[t - 1] = back[t, path[t]]
    return path
