"""STOI and wideband PESQ of generated audio against its time-aligned reference recording.

Needs the ``eval`` extra (``pip install -e .[eval]``: pystoi, pesq). Both are intrusive
measures: they compare the two signals frame by frame, so they only mean something when
the generated audio follows the reference's timing, as a vocoder driven by the
reference's own features does (same length by construction; :func:`aligned` trims both to
the shorter otherwise).

* **STOI** (Taal et al. 2011): ``pystoi.stoi(ref, gen, fs, extended=False)``, 0..1
  (1: as intelligible as the reference). None when the clip has under 30 non-silent
  frames of 25.6 ms, where pystoi would return a placeholder 1e-5.
* **PESQ, wideband** (ITU-T P.862.2): ``pesq.pesq(16000, ref, gen, "wb")``, MOS-LQO
  about 1.0..4.64. 16 kHz only; None when PESQ finds no speech in the reference.
"""

from __future__ import annotations

import warnings

import numpy as np

PESQ_RATE = 16000


def missing_modules(names) -> list[str]:
    """Those of the modules ``names`` that cannot be imported."""
    missing = []
    for name in names:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def missing_packages() -> list[str]:
    """The ``eval`` extra's packages for STOI and PESQ that cannot be imported."""
    return missing_modules(("pystoi", "pesq"))


def aligned(ref: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ref, gen) as float64 (T,), both cut to the shorter length."""
    n = min(len(ref), len(gen))
    return (np.asarray(ref, np.float64).reshape(-1)[:n],
            np.asarray(gen, np.float64).reshape(-1)[:n])


def stoi_score(ref: np.ndarray, gen: np.ndarray, sample_rate: int) -> float | None:
    """STOI of ``gen`` (T,) against ``ref`` (T,) at ``sample_rate``, or None when the
    reference has too little non-silent audio to score."""
    from pystoi import stoi
    from pystoi.stoi import FS, N_FRAME

    ref, gen = aligned(ref, gen)
    # Shorter than one of pystoi's analysis frames (after its resampling to FS): it
    # would fail inside numpy instead of warning.
    if len(ref) * FS < (N_FRAME + 1) * sample_rate:
        return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score = float(stoi(ref, gen, sample_rate, extended=False))
    # pystoi's sign of a clip too short to score is a warning and a 1e-5 "score"
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return None
    return score


def pesq_wb(ref: np.ndarray, gen: np.ndarray, sample_rate: int = PESQ_RATE) -> float | None:
    """Wideband PESQ (MOS-LQO) of ``gen`` (T,) against ``ref`` (T,) at 16 kHz, or None
    when PESQ cannot score the pair (no speech found, clip too short)."""
    import pesq

    if sample_rate != PESQ_RATE:
        raise ValueError(f"wideband PESQ needs {PESQ_RATE} Hz audio, got {sample_rate} Hz")
    ref, gen = aligned(ref, gen)
    if not np.any(ref):  # pesq would divide by the zero peak before giving up
        return None
    try:
        return float(pesq.pesq(PESQ_RATE, ref, gen, "wb"))
    except pesq.PesqError:
        return None
