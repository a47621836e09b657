"""HTS full-context labels + a question file -> frame features (Merlin-style), or a user .npy.

Label files: one phone per line, ``start end context`` with times in HTK units (100 ns).
State-aligned labels (context ending in ``[k]``) are merged into phones by dropping the
state suffix and joining consecutive lines with the same context.

Question files: ``QS "name" {pat1,pat2,...}`` asks whether the context matches any
pattern; ``CQS "name" {pat}`` reads a number. Blank lines and ``#`` comments are skipped.

Pattern semantics. In HTK a ``QS`` pattern must match the *whole* context, ``*`` standing
for any string and ``?`` for one character; that is what is implemented here. (Merlin
and nnmnkwii's ``wildcards2regex`` instead anchor only the ends that have no ``*``, search
patterns without any ``*`` as substrings, and leave ``?`` literal; with the usual
``*-a+*`` style questions both agree.) A ``CQS`` pattern is literal text around one
capture group, ``(\\d+)`` or ``([\\d\\.]+)``, searched anywhere in the context as in
Merlin; when it does not match (HTS writes ``xx`` for "not applicable") the value is
``missing_value`` (-1.0 by default, Merlin's choice).

Frame features (frame ``i`` described at its centre ``(i + 0.5) * H``): one 0/1 column per
``QS`` (named ``qs:<name>``), one value per ``CQS`` (``cqs:<name>``), then
``pos_in_phone`` (fraction of the phone elapsed) and ``log_phone_dur`` (log seconds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.linguistic import frame_phone_index

HTK_RATE = 10_000_000  # HTK time units per second (100 ns)
POSITION_NAMES = ("pos_in_phone", "log_phone_dur")
_QUESTION = re.compile(r'^\s*(QS|CQS)\s+"([^"]+)"\s*\{(.*)\}\s*$')
_STATE = re.compile(r"\[\d+\]$")
_NUMBER_GROUPS = {r"(\d+)": r"(\d+)", r"([\d\.]+)": r"([\d.]+)"}


@dataclass(frozen=True)
class HTSLabel:
    """One phone: ``start``/``end`` in HTK units (100 ns), ``name`` the full context."""

    start: int
    end: int
    name: str


@dataclass(frozen=True)
class QuestionSet:
    """Compiled questions: ``binary`` [(name, [regex])], ``continuous`` [(name, regex)]."""

    binary: tuple[tuple[str, tuple[re.Pattern, ...]], ...]
    continuous: tuple[tuple[str, re.Pattern], ...]

    def feature_names(self) -> list[str]:
        """Names of the columns ``hts_frame_features`` returns, in order."""
        return ([f"qs:{n}" for n, _ in self.binary] + [f"cqs:{n}" for n, _ in self.continuous]
                + list(POSITION_NAMES))

    def binary_mask(self) -> np.ndarray:
        """bool (D,): True for the QS columns (0/1), False for the rest."""
        d = len(self.binary) + len(self.continuous) + len(POSITION_NAMES)
        mask = np.zeros(d, dtype=bool)
        mask[: len(self.binary)] = True
        return mask


def wildcard_to_regex(pattern: str) -> re.Pattern:
    """An HTK QS pattern (``*`` any string, ``?`` one char) as a whole-context regex."""
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile(r"\A" + "".join(parts) + r"\Z", re.DOTALL)


def continuous_to_regex(pattern: str, where: str) -> re.Pattern:
    """A CQS pattern (literal text around one ``(\\d+)``/``([\\d\\.]+)`` group) as a regex."""
    out, i, groups = [], 0, 0
    while i < len(pattern):
        for text, regex in _NUMBER_GROUPS.items():
            if pattern.startswith(text, i):
                out.append(regex)
                i += len(text)
                groups += 1
                break
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    if groups != 1:
        raise VocoderError(f"{where}: a CQS pattern needs exactly one (\\d+) or ([\\d\\.]+) "
                           f"group, got {pattern!r}")
    return re.compile("".join(out))


def load_question_set(path: str | Path) -> QuestionSet:
    """Parse an HTS question file (``QS``/``CQS`` lines); errors name the line."""
    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"question file not found: {path}")
    binary, continuous, seen = [], [], set()
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{lineno}"
        m = _QUESTION.match(line)
        if not m:
            raise VocoderError(f'{where}: expected QS "name" {{pattern,...}} or '
                               f'CQS "name" {{pattern}}, got {line[:80]!r}')
        kind, name, body = m.groups()
        if (kind, name) in seen:
            raise VocoderError(f"{where}: question {name!r} is defined twice")
        seen.add((kind, name))
        patterns = [p.strip() for p in body.split(",") if p.strip()]
        if not patterns:
            raise VocoderError(f"{where}: question {name!r} has no pattern")
        if kind == "QS":
            binary.append((name, tuple(wildcard_to_regex(p) for p in patterns)))
        else:
            if len(patterns) != 1:
                raise VocoderError(f"{where}: CQS {name!r} must have exactly one pattern")
            continuous.append((name, continuous_to_regex(patterns[0], where)))
    if not binary and not continuous:
        raise VocoderError(f"question file {path} contains no QS or CQS lines")
    return QuestionSet(tuple(binary), tuple(continuous))


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


def label_features(label: str, questions: QuestionSet,
                   missing_value: float = -1.0) -> np.ndarray:
    """float32 (Q_bin + Q_cont,): the answers for one full-context label."""
    out = np.empty(len(questions.binary) + len(questions.continuous), dtype=np.float32)
    for i, (_, regexes) in enumerate(questions.binary):
        out[i] = any(r.match(label) for r in regexes)
    base = len(questions.binary)
    for j, (_, regex) in enumerate(questions.continuous):
        m = regex.search(label)
        out[base + j] = float(m.group(1)) if m else missing_value
    return out


def hts_frame_features(labels: list[HTSLabel], questions: QuestionSet, n_frames: int,
                       sample_rate: int = 16000, hop_length: int = 80,
                       missing_value: float = -1.0) -> np.ndarray:
    """float32 (n_frames, len(questions.feature_names())) at the hop.

    Frames past the last label get the last label (as with eSpeak's trailing padding).
    """
    if n_frames <= 0:
        raise VocoderError(f"n_frames must be > 0, got {n_frames}")
    per_phone = np.stack([label_features(lab.name, questions, missing_value)
                          for lab in labels])
    k = frame_phone_index(labels, HTK_RATE, n_frames, sample_rate, hop_length)
    starts = np.array([lab.start for lab in labels], dtype=np.float64)
    ends = np.array([lab.end for lab in labels], dtype=np.float64)
    centres = (np.arange(n_frames) + 0.5) * hop_length * (HTK_RATE / sample_rate)
    pos = np.clip((centres - starts[k]) / (ends[k] - starts[k]), 0.0, 1.0)
    log_dur = np.log(np.maximum((ends[k] - starts[k]) / HTK_RATE, 1e-3))
    return np.concatenate([per_phone[k], pos[:, None], log_dur[:, None]],
                          axis=1).astype(np.float32)


def label_n_frames(labels: list[HTSLabel], sample_rate: int, hop_length: int) -> float:
    """Length of the labels in frames (fractional): the last end time over the hop."""
    return labels[-1].end / HTK_RATE * sample_rate / hop_length


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
