"""Frame labels from a dataset's phone alignment, and the phone inventory.

Where the alignment is: a dataset in the vocoder format stores, for every 5 ms feature
frame, the one-hot of the phone under the frame's centre in the columns named
``cur=<phone>`` (:mod:`vocoder.features.linguistic`; eSpeak knows every phone's start and
end, and all its pauses are already folded into ``_``). A dataset without these columns
(e.g. features from a user's own .npy) has no alignment to learn from.

An ASR frame ``j`` covers samples ``[j F, (j + 1) F)`` (F = ``frame_hop``); its label is
the phone of the feature frame that holds its centre sample ``j F + F // 2``.

The inventory is silence (``_``, always class 0) followed by every other phone that
occurs in the training split, in the dataset's column order. A phone outside it (seen
only in the test split) gets the label :data:`UNKNOWN`: it cannot be predicted, so it
counts as an error in the frame accuracy and keeps its name in the reference sequence.
"""

from __future__ import annotations

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.linguistic import PAUSE

SILENCE = PAUSE
PREFIX = "cur="
#: Label of a frame whose phone is not in the model's inventory.
UNKNOWN = -1


def phone_columns(feature_names: list[str], where: str = "the dataset") -> dict[str, int]:
    """Phone name -> feature column of the ``cur=<phone>`` one-hot block."""
    cols = {n[len(PREFIX):]: i for i, n in enumerate(feature_names) if n.startswith(PREFIX)}
    if not cols:
        raise VocoderError(f"{where} has no phone alignment: no 'cur=<phone>' feature "
                           f"columns (the built-in eSpeak corpus has them; features from "
                           f"your own .npy or HTS labels do not)")
    if SILENCE not in cols:
        raise VocoderError(f"{where}: the phone alignment has no silence column "
                           f"'{PREFIX}{SILENCE}'")
    return cols


def frame_phones(features: np.ndarray, columns: dict[str, int], hop_length: int,
                 n_asr_frames: int, frame_hop: int, who: str = "utterance") -> list[str]:
    """The phone name of every ASR frame, from (Tf, D) features at ``hop_length``."""
    names = list(columns)
    block = features[:, list(columns.values())]
    if block.shape[0] == 0 or not np.all(block.sum(axis=1) == 1):
        raise VocoderError(f"{who}: the 'cur=<phone>' columns are not one-hot on every "
                           f"frame, so they are not a phone alignment")
    current = block.argmax(axis=1)
    centres = np.arange(n_asr_frames) * frame_hop + frame_hop // 2
    idx = np.minimum(centres // hop_length, block.shape[0] - 1)
    return [names[k] for k in current[idx]]


def inventory(columns: dict[str, int], phone_sequences: list[list[str]]) -> list[str]:
    """Silence first, then every phone that occurs in ``phone_sequences``, in column
    order."""
    seen = {p for seq in phone_sequences for p in seq}
    return [SILENCE] + [p for p in columns if p in seen and p != SILENCE]


def encode(phones: list[str], inventory_: list[str]) -> np.ndarray:
    """int64 (T,) class of each frame's phone; :data:`UNKNOWN` outside the inventory."""
    index = {p: i for i, p in enumerate(inventory_)}
    return np.array([index.get(p, UNKNOWN) for p in phones], dtype=np.int64)
