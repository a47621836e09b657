"""Frame-level linguistic features from a timed phone sequence, and the feature layout.

The layout for the built-in (eSpeak) features, per frame at hop H (frame ``i`` stands
for samples ``[i*H, (i+1)*H)`` and is described at its centre ``(i + 0.5) * H``):

======================  =====  ==========================================================
names                   count  meaning
======================  =====  ==========================================================
``cur=<ph>``            P + 1  one-hot current phone over ``PHONES`` + ``other``
``prev=<ph>``           P + 1  one-hot previous phone (pause ``_`` before the first)
``next=<ph>``           P + 1  one-hot next phone (pause ``_`` after the last)
``stress_primary``      1      current phone carries primary stress (binary)
``stress_secondary``    1      current phone carries secondary stress (binary)
``pos_in_phone``        1      fraction of the current phone elapsed at the centre, [0, 1]
``log_phone_dur``       1      natural log of the phone's duration in seconds
``pos_in_word``         1      fraction of the current word elapsed, [0, 1]; 0 in pauses
``pos_in_utt``          1      fraction of the utterance elapsed, [0, 1]
``log_f0``              1      continuous log-F0 (log-Hz), see ``vocoder.features.f0``
``vuv``                 1      1 voiced, 0 unvoiced (binary)
======================  =====  ==========================================================

``PHONES`` is a fixed set: the ASCII phoneme mnemonics eSpeak NG 1.51 emits for English
(``en``, ``en-us`` and their variants; collected by running a broad English text through
both), with every pause (``_``, ``_:``, ``_!``...) folded into ``_``. A phone outside the
set (another language, another eSpeak version) maps to the ``other`` slot. Changing the
set changes the feature dimension: trained models record ``feature_names()``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from vocoder.errors import VocoderError

PHONES: tuple[str, ...] = (
    "_", "0", "3", "3:", ";", "?", "@", "@-", "@2", "@L", "A:", "A@", "D", "E", "I", "I#",
    "I2", "N", "O2", "O:", "O@", "OI", "S", "T", "U", "U@", "V", "Z", "a", "a#", "aI", "aI3",
    "aI@", "aU", "aa", "b", "d", "dZ", "e@", "eI", "f", "g", "h", "i", "i:", "i@", "i@3", "j",
    "k", "l", "m", "n", "n-", "o@", "oU", "p", "r", "r-", "s", "t", "t#", "t2", "tS", "u:",
    "v", "w", "z",
)
OTHER = "other"
PAUSE = "_"
_SLOTS: tuple[str, ...] = PHONES + (OTHER,)
_INDEX = {p: i for i, p in enumerate(_SLOTS)}
CONTINUOUS_NAMES = ("pos_in_phone", "log_phone_dur", "pos_in_word", "pos_in_utt")
STRESS_NAMES = ("stress_primary", "stress_secondary")
ACOUSTIC_NAMES = ("log_f0", "vuv")
_MIN_DUR_S = 1e-3  # keeps log duration finite for degenerate (sub-millisecond) phones


class TimedPhone(Protocol):
    """What the feature builder needs from a phone (``vocoder.features.espeak.Phone``).

    ``start``/``end`` in samples at the caller's ``source_rate``; ``stress`` 0 none,
    1 secondary, 2 primary; ``word`` index of the word, -1 for pauses.
    """

    name: str
    start: int
    end: int
    stress: int
    word: int


def phone_slot(name: str) -> int:
    """Index of ``name`` in the one-hot block; pauses fold to ``_``, unknowns to ``other``."""
    if name.startswith("_"):
        name = PAUSE
    return _INDEX.get(name, _INDEX[OTHER])


def linguistic_names() -> list[str]:
    """Names of the linguistic block (everything but log_f0 and vuv), in order."""
    names = [f"{ctx}={p}" for ctx in ("cur", "prev", "next") for p in _SLOTS]
    return names + list(STRESS_NAMES) + list(CONTINUOUS_NAMES)


def feature_names() -> list[str]:
    """All per-frame feature names of the built-in features, in column order."""
    return linguistic_names() + list(ACOUSTIC_NAMES)


def binary_mask(names: Sequence[str] | None = None) -> np.ndarray:
    """bool (D,): True for 0/1 dimensions (one-hots, stress flags, vuv).

    Normalisation must leave these alone. ``names`` defaults to ``feature_names()``.
    """
    names = feature_names() if names is None else names
    binary = {"vuv", *STRESS_NAMES}
    return np.array([("=" in n) or (n in binary) for n in names], dtype=bool)


def feature_dim() -> int:
    """D of the built-in features (linguistic + log_f0 + vuv)."""
    return len(feature_names())


def frame_centres(n_frames: int, hop_length: int, sample_rate: int,
                  source_rate: int) -> np.ndarray:
    """float64 (n_frames,): frame centres ``(i + 0.5) * H`` expressed in source samples."""
    return (np.arange(n_frames) + 0.5) * hop_length * (source_rate / sample_rate)


def frame_phone_index(phones: Sequence[TimedPhone], source_rate: int, n_frames: int,
                      sample_rate: int, hop_length: int) -> np.ndarray:
    """int64 (n_frames,): index into ``phones`` of the phone under each frame centre.

    Centres past the last phone (the zero padding to a whole frame) get the last phone.
    """
    starts = np.array([p.start for p in phones], dtype=np.float64)
    centres = frame_centres(n_frames, hop_length, sample_rate, source_rate)
    idx = np.searchsorted(starts, centres, side="right") - 1
    return np.clip(idx, 0, len(phones) - 1)


def _validate_phones(phones: Sequence[TimedPhone]) -> None:
    if not phones:
        raise VocoderError("no phones: cannot build linguistic features")
    prev_end = None
    for i, p in enumerate(phones):
        if p.end <= p.start:
            raise VocoderError(f"phone {i} ({p.name!r}) has end {p.end} <= start {p.start}")
        if prev_end is not None and p.start < prev_end:
            raise VocoderError(f"phone {i} ({p.name!r}) starts at {p.start}, before the "
                               f"previous phone ends ({prev_end}): phones must not overlap")
        prev_end = p.end


def linguistic_features(phones: Sequence[TimedPhone], source_rate: int, n_frames: int,
                        sample_rate: int = 16000, hop_length: int = 80) -> np.ndarray:
    """The linguistic block of the frame features.

    Args:
        phones: time-ordered, non-overlapping phones; times in samples at ``source_rate``.
        source_rate: rate of the phone times (eSpeak: 22050).
        n_frames: frames to produce (audio at ``sample_rate`` has n_frames * H samples).
        sample_rate, hop_length: the target frame grid.

    Returns:
        float32 (n_frames, len(linguistic_names())).
    """
    _validate_phones(phones)
    if n_frames <= 0:
        raise VocoderError(f"n_frames must be > 0, got {n_frames}")
    n_slots = len(_SLOTS)
    slots = np.array([phone_slot(p.name) for p in phones])
    pause = _INDEX[PAUSE]
    prev_slots = np.concatenate([[pause], slots[:-1]])
    next_slots = np.concatenate([slots[1:], [pause]])
    starts = np.array([p.start for p in phones], dtype=np.float64)
    ends = np.array([p.end for p in phones], dtype=np.float64)
    stress = np.array([p.stress for p in phones])
    words = np.array([p.word for p in phones])

    # Word extents: from the first phone's start to the last phone's end of each word.
    word_start = {}
    word_end = {}
    for w, s, e in zip(words, starts, ends):
        if w >= 0:
            word_start[w] = min(word_start.get(w, s), s)
            word_end[w] = max(word_end.get(w, e), e)
    ws = np.array([word_start.get(w, s) for w, s in zip(words, starts)])
    we = np.array([word_end.get(w, e) for w, e in zip(words, ends)])

    centres = frame_centres(n_frames, hop_length, sample_rate, source_rate)
    k = frame_phone_index(phones, source_rate, n_frames, sample_rate, hop_length)
    rows = np.arange(n_frames)
    out = np.zeros((n_frames, len(linguistic_names())), dtype=np.float32)
    out[rows, slots[k]] = 1.0
    out[rows, n_slots + prev_slots[k]] = 1.0
    out[rows, 2 * n_slots + next_slots[k]] = 1.0
    col = 3 * n_slots
    out[:, col] = stress[k] == 2
    out[:, col + 1] = stress[k] == 1
    col += 2
    out[:, col] = np.clip((centres - starts[k]) / (ends[k] - starts[k]), 0.0, 1.0)
    dur_s = np.maximum((ends[k] - starts[k]) / source_rate, _MIN_DUR_S)
    out[:, col + 1] = np.log(dur_s)
    in_word = words[k] >= 0
    pos_word = np.clip((centres - ws[k]) / np.maximum(we[k] - ws[k], 1.0), 0.0, 1.0)
    out[:, col + 2] = np.where(in_word, pos_word, 0.0)
    total = max(ends[-1], 1.0)
    out[:, col + 3] = np.clip(centres / total, 0.0, 1.0)
    return out


def assemble(linguistic: np.ndarray, log_f0: np.ndarray, vuv: np.ndarray) -> np.ndarray:
    """float32 (T, D_ling + 2): ``[linguistic, log_f0, vuv]``; all must have T rows."""
    t = linguistic.shape[0]
    if log_f0.shape != (t,) or vuv.shape != (t,):
        raise VocoderError(f"frame counts differ: linguistic {linguistic.shape}, log_f0 "
                           f"{log_f0.shape}, vuv {vuv.shape}")
    return np.concatenate([linguistic, log_f0[:, None], vuv[:, None]],
                          axis=1).astype(np.float32)


def n_frames_for(n_samples: int, hop_length: int) -> int:
    """Whole frames covering ``n_samples`` (audio is zero-padded up to this many * H)."""
    return max(1, math.ceil(n_samples / hop_length))
