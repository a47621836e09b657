"""HTS full-context labels + a question file -> frame features (Merlin-style), or a user .npy.

Label files: one phone per line, ``start end context`` with times in HTK units (100 ns).
State-aligned labels (context ending in ``[k]``) are merged into phones by dropping the
state suffix and joining consecutive lines with the same context.

Questions (``QS``/``CQS``) and the two readings of their patterns, Merlin's (default) and
HTK's: :mod:`vocoder.features.hts_questions`, re-exported here.

Frame features: one 0/1 column per ``QS`` (``qs:<name>``), one value per ``CQS``
(``cqs:<name>``), then two position columns, by ``positions``:

- ``"centre"`` (default): frame ``i`` is described at its centre ``(i + 0.5) * H``: it takes
  the phone under the centre, ``pos_in_phone`` is the fraction of that phone elapsed at
  the centre and ``log_phone_dur`` the natural log of the phone's duration in seconds.
- ``"merlin"``: Merlin's frames. Phone ``k`` owns frames ``floor(start/H)`` to
  ``floor(end/H) - 1`` (the frames whose *end* falls inside it), ``n_k`` of them;
  ``pos_in_phone`` is ``(j + 1) / n_k`` for its ``j``-th frame and ``phone_frames`` is
  ``n_k``. A phone shorter than a frame may own no frame, as in Merlin. (Merlin counts
  state-aligned labels state by state; with states on the frame grid, as in its data,
  the counts agree.)

Frames past the last label get the last label, with ``pos_in_phone`` 1.

Audio that runs past its labels (real recordings often do) is trimmed to the labels' end,
rounded up to a whole frame, when the excess is at most ``HTSConfig.max_trailing_s``;
beyond that, and for labels that run more than a frame past the audio, it is an error
naming the utterance (:func:`fit_audio_to_labels`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.hts_questions import (
    MATCHING,
    QuestionSet,
    QuestionUsage,
    check_matching,
    continuous_to_regex,
    label_features,
    load_question_set,
    wildcard_to_regex,
)
from vocoder.features.linguistic import frame_phone_index

__all__ = [
    "HTK_RATE", "MATCHING", "POSITIONS", "HTSConfig", "HTSLabel", "HTSWarning", "QuestionSet",
    "QuestionUsage", "binary_mask", "check_label_length", "continuous_to_regex",
    "feature_names", "fit_audio_to_labels", "hts_frame_features", "label_features",
    "label_n_frames", "load_question_set", "load_user_features", "read_hts_labels",
    "wildcard_to_regex",
]

HTK_RATE = 10_000_000  # HTK time units per second (100 ns)
POSITIONS = ("centre", "merlin")
POSITION_NAMES = {"centre": ("pos_in_phone", "log_phone_dur"),
                  "merlin": ("pos_in_phone", "phone_frames")}
_STATE = re.compile(r"\[\d+\]$")
_MIN_DUR_S = 1e-3  # keeps the log duration finite for degenerate (sub-millisecond) phones


class HTSWarning(UserWarning):
    """A note for the user about HTS labels or questions: audio trimmed to its labels,
    questions that never fire."""


@dataclass(frozen=True)
class HTSConfig:
    """How HTS labels become frame features (see the module docstring).

    ``matching``: ``"merlin"`` or ``"htk"``, how ``QS`` patterns match;
    ``positions``: ``"centre"`` or ``"merlin"``, the position columns' convention;
    ``max_trailing_s``: the most audio past the labels' end that is trimmed (seconds).

    ``vocoder features`` writes it into the dataset's corpus.json (``source.hts``), which a
    bundle trained on the dataset carries (``training.corpus.source``): read it back with
    :meth:`from_source` to compute features the same way at synthesis.
    """

    matching: str = "merlin"
    positions: str = "centre"
    max_trailing_s: float = 0.25

    def __post_init__(self) -> None:
        check_matching(self.matching)
        if self.positions not in POSITIONS:
            raise VocoderError(f"HTS positions must be one of {', '.join(POSITIONS)}, got "
                               f"{self.positions!r}")
        if not (isinstance(self.max_trailing_s, int | float) and self.max_trailing_s >= 0
                and math.isfinite(self.max_trailing_s)):
            raise VocoderError(f"max trailing audio must be a number of seconds >= 0, got "
                               f"{self.max_trailing_s!r}")
        object.__setattr__(self, "max_trailing_s", float(self.max_trailing_s))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HTSConfig:
        """The inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        if not isinstance(d, dict):
            raise VocoderError(f"HTS options must be a JSON object, got {d!r}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise VocoderError(f"unknown HTS option(s): {', '.join(sorted(unknown))}")
        return cls(**d)

    @classmethod
    def from_source(cls, source: dict[str, Any] | None) -> HTSConfig:
        """The options a dataset was built with, from corpus.json's ``source``.

        Datasets written before the options were recorded used HTK matching and centre
        positions. A dataset whose features do not come from HTS labels is an error.
        """
        source = source if isinstance(source, dict) else {}
        if source.get("linguistic") != "hts-labels":
            raise VocoderError("the dataset's linguistic features do not come from HTS "
                               f"labels (source: {source.get('linguistic')!r})")
        recorded = source.get("hts")
        return cls(matching="htk") if recorded is None else cls.from_dict(recorded)


@dataclass(frozen=True)
class HTSLabel:
    """One phone: ``start``/``end`` in HTK units (100 ns), ``name`` the full context."""

    start: int
    end: int
    name: str


def feature_names(questions: QuestionSet, positions: str = "centre") -> list[str]:
    """Names of the columns :func:`hts_frame_features` returns, in order."""
    return questions.question_names() + list(_position_names(positions))


def binary_mask(questions: QuestionSet, positions: str = "centre") -> np.ndarray:
    """bool (D,): True for the QS columns (0/1), False for the rest."""
    mask = np.zeros(len(feature_names(questions, positions)), dtype=bool)
    mask[: len(questions.binary)] = True
    return mask


def _position_names(positions: str) -> tuple[str, str]:
    if positions not in POSITION_NAMES:
        raise VocoderError(f"HTS positions must be one of {', '.join(POSITIONS)}, got "
                           f"{positions!r}")
    return POSITION_NAMES[positions]


def read_hts_labels(path: str | Path) -> list[HTSLabel]:
    """Read a time-aligned full-context label file into phones (state labels merged)."""
    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"label file not found: {path}")
    labels: list[HTSLabel] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = raw.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise VocoderError(f"{path}:{lineno}: expected 'start end context' (times in "
                               f"100 ns units), got {raw.strip()[:80]!r}")
        try:
            start, end = int(fields[0]), int(fields[1])
        except ValueError:
            raise VocoderError(f"{path}:{lineno}: start/end must be integers (100 ns), got "
                               f"{fields[0]!r} {fields[1]!r}") from None
        if end <= start:
            raise VocoderError(f"{path}:{lineno}: end {end} <= start {start}")
        if labels and start < labels[-1].end:
            raise VocoderError(f"{path}:{lineno}: starts at {start}, before the previous "
                               f"label ends ({labels[-1].end})")
        context = _STATE.sub("", fields[2])
        if labels and _STATE.search(fields[2]) and labels[-1].name == context:
            labels[-1] = HTSLabel(labels[-1].start, end, context)
        else:
            labels.append(HTSLabel(start, end, context))
    if not labels:
        raise VocoderError(f"label file {path} is empty")
    return labels


def hts_frame_features(labels: list[HTSLabel], questions: QuestionSet, n_frames: int,
                       sample_rate: int = 16000, hop_length: int = 80,
                       positions: str = "centre", missing_value: float = -1.0) -> np.ndarray:
    """float32 (n_frames, len(feature_names(questions, positions))) at the hop.

    ``labels``: time-ordered phones (:func:`read_hts_labels`); ``positions``: ``"centre"``
    or ``"merlin"`` (see the module docstring); ``missing_value``: a ``CQS`` answer where
    its pattern does not match (-1, as Merlin).
    """
    _position_names(positions)
    if n_frames <= 0:
        raise VocoderError(f"n_frames must be > 0, got {n_frames}")
    per_phone = np.stack([label_features(lab.name, questions, missing_value)
                          for lab in labels])
    starts = np.array([lab.start for lab in labels], dtype=np.int64)
    ends = np.array([lab.end for lab in labels], dtype=np.int64)
    if positions == "centre":
        k = frame_phone_index(labels, HTK_RATE, n_frames, sample_rate, hop_length)
        centres = (np.arange(n_frames) + 0.5) * hop_length * (HTK_RATE / sample_rate)
        span = (ends[k] - starts[k]).astype(np.float64)
        pos = np.clip((centres - starts[k]) / span, 0.0, 1.0)
        extra = np.log(np.maximum(span / HTK_RATE, _MIN_DUR_S))
    else:
        # Integer arithmetic: floor(t / H) with H = hop * HTK_RATE / sample_rate exactly.
        unit = hop_length * HTK_RATE
        first, stop = starts * sample_rate // unit, ends * sample_rate // unit
        k = np.minimum(np.searchsorted(stop, np.arange(n_frames), side="right"),
                       len(labels) - 1)
        n = stop[k] - first[k]
        pos = np.clip((np.arange(n_frames) - first[k] + 1) / np.maximum(n, 1), 0.0, 1.0)
        extra = n.astype(np.float64)
    return np.concatenate([per_phone[k], pos[:, None], extra[:, None]],
                          axis=1).astype(np.float32)


def label_n_frames(labels: list[HTSLabel], sample_rate: int, hop_length: int) -> float:
    """Length of the labels in frames (fractional): the last end time over the hop."""
    return labels[-1].end / HTK_RATE * sample_rate / hop_length


def fit_audio_to_labels(audio: np.ndarray, labels: list[HTSLabel], sample_rate: int,
                        hop_length: int, max_trailing_s: float = 0.25,
                        utt_id: str = "") -> tuple[np.ndarray, int]:
    """The audio (N,) cut to its labels: ``(audio[:M], N - M)``, samples trimmed.

    Within a frame of the labels' end nothing changes. Audio running further past the
    labels is trimmed to the labels' end rounded up to a whole frame, if the excess is at
    most ``max_trailing_s`` seconds; a larger excess, or labels lasting more than a frame
    past the audio, is an error naming the utterance and both lengths.
    """
    n_frames = max(1, math.ceil(audio.shape[0] / hop_length))
    if n_frames <= label_n_frames(labels, sample_rate, hop_length) + 1.0 + 1e-9:
        check_label_length(labels, n_frames, sample_rate, hop_length, utt_id)
        return audio, 0
    unit = hop_length * HTK_RATE
    keep = -(-labels[-1].end * sample_rate // unit) * hop_length  # whole frames, rounded up
    label_s, audio_s = labels[-1].end / HTK_RATE, audio.shape[0] / sample_rate
    if audio_s - label_s > max_trailing_s + 1e-9:
        who = f"utterance {utt_id!r}: " if utt_id else ""
        raise VocoderError(
            f"{who}the audio lasts {audio_s:.3f} s ({n_frames} frames) but its labels end at "
            f"{label_s:.3f} s ({label_n_frames(labels, sample_rate, hop_length):.2f} frames): "
            f"{audio_s - label_s:.3f} s of audio past the labels is more than the "
            f"{max_trailing_s:g} s that may be trimmed (--max-trailing-audio); check that "
            f"the labels belong to this wav")
    return audio[:keep], audio.shape[0] - keep


def load_user_features(path: str | Path, n_frames: int, utt_id: str = "") -> np.ndarray:
    """A user's (Tf, D) .npy at the hop, fitted to exactly ``n_frames`` rows.

    Tf may differ from ``n_frames`` by at most one frame (rounding of the audio length);
    the last row is repeated or dropped to fit. Anything else is an error naming the
    utterance.
    """
    from vocoder.inputs import read_npy

    who = f"utterance {utt_id!r}: " if utt_id else ""
    feats = read_npy(path, who)
    if not isinstance(feats, np.ndarray):
        raise VocoderError(f"{who}{path}: expected a .npy array, got a .npz archive")
    if feats.ndim != 2 or feats.shape[0] == 0 or feats.shape[1] == 0:
        raise VocoderError(f"{who}features in {path} must be 2-D (frames, dims), got "
                           f"shape {feats.shape}")
    if not np.issubdtype(feats.dtype, np.floating) and not np.issubdtype(feats.dtype,
                                                                           np.integer):
        raise VocoderError(f"{who}features in {path} must be numeric, got {feats.dtype}")
    feats = feats.astype(np.float32)
    if not np.all(np.isfinite(feats)):
        raise VocoderError(f"{who}features in {path} contain NaN or Inf")
    if abs(feats.shape[0] - n_frames) > 1:
        raise VocoderError(f"{who}{path} has {feats.shape[0]} frames but the audio has "
                           f"{n_frames} frames at this hop (tolerance: one frame)")
    if feats.shape[0] < n_frames:
        feats = np.concatenate([feats, feats[-1:]], axis=0)
    return np.ascontiguousarray(feats[:n_frames])


def check_label_length(labels: list[HTSLabel], n_frames: int, sample_rate: int,
                       hop_length: int, utt_id: str = "") -> None:
    """Raise unless the labels' end lies within one frame of the audio's ``n_frames``."""
    length = label_n_frames(labels, sample_rate, hop_length)
    if abs(length - n_frames) > 1.0 + 1e-9:
        who = f"utterance {utt_id!r}: " if utt_id else ""
        raise VocoderError(f"{who}labels last {length:.2f} frames but the audio has "
                           f"{n_frames} frames (tolerance: one frame); are the label times "
                           f"in 100 ns units?")
