"""HTS question files: parse ``QS``/``CQS`` lines, answer them for a full-context label.

``QS "name" {pat1,pat2,...}`` asks whether the context matches any pattern; ``CQS "name"
{pat}`` reads a number. Blank lines and ``#`` comments are skipped.

Two readings of a ``QS`` pattern (``matching``):

- ``"merlin"`` (the default): Merlin's and nnmnkwii's. A pattern without ``*`` is searched
  anywhere in the context (``{-aa+}`` asks "is the current phone aa"); a pattern with a
  ``*`` is anchored at each end that has none (``{aa^*}`` must start the context); inner
  ``*`` stand for any string and ``?`` is a literal character. Questions whose name
  contains ``LL-`` are anchored at the start, as Merlin does, so ``{y^}`` asks about the
  left-left phone and not about the end of ``ay^``. Merlin's question files are written
  for this reading.
- ``"htk"``: HTK's. A pattern must match the *whole* context, ``*`` standing for any
  string and ``?`` for one character; ``{-aa+}`` never matches a full context.

With the usual ``*-aa+*`` patterns both readings agree. ``CQS`` is Merlin's extension and
is always read Merlin's way: literal text around one capture group, ``(\\d+)`` or
``([\\d\\.]+)``, with ``*`` as above (so ``{*/A:(\\d+)_*}`` and ``{/A:(\\d+)_}`` are the same
question). When it does not match (HTS writes ``xx`` for "not applicable") the answer is
the caller's missing value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocoder.errors import VocoderError

MATCHING = ("merlin", "htk")
_QUESTION = re.compile(r'^\s*(QS|CQS)\s+"([^"]+)"\s*\{(.*)\}\s*$')
_NUMBER_GROUPS = {r"(\d+)": r"(\d+)", r"([\d\.]+)": r"([\d.]+)"}


@dataclass(frozen=True)
class QuestionSet:
    """Compiled questions: ``binary`` [(name, [regex])], ``continuous`` [(name, regex)].

    ``matching`` is the reading the ``QS`` patterns were compiled with (see the module).
    """

    binary: tuple[tuple[str, tuple[re.Pattern, ...]], ...]
    continuous: tuple[tuple[str, re.Pattern], ...]
    matching: str = "merlin"

    def question_names(self) -> list[str]:
        """``qs:<name>`` for each QS then ``cqs:<name>`` for each CQS, in column order."""
        return [f"qs:{n}" for n, _ in self.binary] + [f"cqs:{n}" for n, _ in self.continuous]


def check_matching(matching: str) -> str:
    """``matching`` if it is one of ``MATCHING``, else a VocoderError naming them."""
    if matching not in MATCHING:
        raise VocoderError(f"question matching must be one of {', '.join(MATCHING)}, got "
                           f"{matching!r}")
    return matching


def wildcard_to_regex(pattern: str, matching: str = "merlin",
                      anchor_start: bool = False) -> re.Pattern:
    """A ``QS`` pattern as a regex to ``search`` the context with (see the module).

    ``anchor_start`` (Merlin's rule for ``LL-`` questions) anchors a ``"merlin"`` pattern at
    the start of the context.
    """
    if check_matching(matching) == "htk":
        parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
        return re.compile(r"\A" + "".join(parts) + r"\Z", re.DOTALL)
    return re.compile(_merlin_regex(pattern, anchor_start), re.DOTALL)


def continuous_to_regex(pattern: str, where: str) -> re.Pattern:
    """A ``CQS`` pattern (text and ``*`` around one ``(\\d+)``/``([\\d\\.]+)``) as a regex."""
    groups = sum(pattern.count(g) for g in _NUMBER_GROUPS)
    if groups != 1:
        raise VocoderError(f"{where}: a CQS pattern needs exactly one (\\d+) or ([\\d\\.]+) "
                           f"group, got {pattern!r}")
    return re.compile(_merlin_regex(pattern, False, numbers=True), re.DOTALL)


def _merlin_regex(pattern: str, anchor_start: bool, numbers: bool = False) -> str:
    # Merlin anchors an end only when the pattern has a '*' somewhere but not at that end;
    # a pattern without any '*' is a substring search.
    starred = "*" in pattern
    prefix = r"\A" if anchor_start or (starred and not pattern.startswith("*")) else ""
    suffix = r"\Z" if starred and not pattern.endswith("*") else ""
    body, out, i = pattern.strip("*"), [], 0
    while i < len(body):
        group = next((g for g in _NUMBER_GROUPS if numbers and body.startswith(g, i)), None)
        if group is not None:
            out.append(_NUMBER_GROUPS[group])
            i += len(group)
            continue
        out.append(".*" if body[i] == "*" else re.escape(body[i]))
        i += 1
    return prefix + "".join(out) + suffix


def load_question_set(path: str | Path, matching: str = "merlin") -> QuestionSet:
    """Parse an HTS question file (``QS``/``CQS`` lines); errors name the line."""
    check_matching(matching)
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
            binary.append((name, tuple(wildcard_to_regex(p, matching, "LL-" in name)
                                       for p in patterns)))
        else:
            if len(patterns) != 1:
                raise VocoderError(f"{where}: CQS {name!r} must have exactly one pattern")
            continuous.append((name, continuous_to_regex(patterns[0], where)))
    if not binary and not continuous:
        raise VocoderError(f"question file {path} contains no QS or CQS lines")
    return QuestionSet(tuple(binary), tuple(continuous), matching)


def label_features(label: str, questions: QuestionSet,
                   missing_value: float = -1.0) -> np.ndarray:
    """float32 (Q_bin + Q_cont,): the answers for one full-context label."""
    out = np.empty(len(questions.binary) + len(questions.continuous), dtype=np.float32)
    for i, (_, regexes) in enumerate(questions.binary):
        out[i] = any(r.search(label) for r in regexes)
    base = len(questions.binary)
    for j, (_, regex) in enumerate(questions.continuous):
        m = regex.search(label)
        out[base + j] = float(m.group(1)) if m else missing_value
    return out


class QuestionUsage:
    """Which questions fired at least once over many utterances (a dataset).

    A ``QS`` fires on a frame answered 1, a ``CQS`` on a frame where it read a number. A
    question that never fires on a whole dataset is a constant column: usually a pattern
    written for the other reading (``matching``) or for another label format.
    """

    def __init__(self, questions: QuestionSet, missing_value: float = -1.0):
        self.names = questions.question_names()
        self.n_binary = len(questions.binary)
        self.missing_value = missing_value
        self.fired = np.zeros(len(self.names), dtype=bool)

    def add(self, answers: np.ndarray) -> None:
        """Count one utterance: ``answers`` (T, Q) the question columns of its frames."""
        answers = np.asarray(answers)[:, : len(self.names)]
        self.fired[: self.n_binary] |= (answers[:, : self.n_binary] == 1).any(axis=0)
        self.fired[self.n_binary:] |= (answers[:, self.n_binary:]
                                       != self.missing_value).any(axis=0)

    def never_fired(self) -> list[str]:
        """Names (``qs:``/``cqs:``) of the questions that have not fired yet, in order."""
        return [n for n, f in zip(self.names, self.fired) if not f]

    def warning(self, matching: str, limit: int = 10) -> str | None:
        """A message naming the silent questions (the first ``limit``), or None."""
        silent = self.never_fired()
        if not silent:
            return None
        shown = ", ".join(silent[:limit]) + (", ..." if len(silent) > limit else "")
        hint = ("; the question file may be written for the other pattern reading "
                "(--hts-matching merlin|htk)" if len(silent) > len(self.names) // 2 else "")
        return (f"{len(silent)} of {len(self.names)} HTS questions never fire on this data "
                f"(constant columns; matching={matching!r}): {shown}{hint}")
