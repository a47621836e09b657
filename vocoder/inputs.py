"""Validation of what users pass to public entry points: clear errors, never a traceback
from deep inside numpy or torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vocoder.config import WaveNetConfig
from vocoder.errors import VocoderError


def check_features(features, cfg: WaveNetConfig, what: str = "features") -> np.ndarray | None:
    """-> (Tf, D) float32, or None for a model without local conditioning."""
    D = cfg.cond_channels
    if not D:
        if features is not None:
            raise VocoderError(f"this model has no local conditioning (cond_channels=0): "
                               f"pass {what}=None and n_samples")
        return None
    if features is None:
        raise VocoderError(f"this model needs {what}: a float array (frames, {D})")
    try:
        arr = np.asarray(features)
    except Exception as e:  # ragged lists and the like
        raise VocoderError(f"{what}: expected a float array (frames, {D}); got {e}") from None
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) \
            or not np.issubdtype(arr.dtype, np.floating):
        raise VocoderError(f"{what}: expected a floating-point array (frames, {D}), "
                           f"got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise VocoderError(f"{what}: expected shape (frames, {D}), got {arr.shape}")
    if arr.shape[1] != D:
        raise VocoderError(f"{what}: expected {D} feature dimensions per frame, "
                           f"got {arr.shape[1]} (shape {arr.shape})")
    if arr.shape[0] == 0:
        raise VocoderError(f"{what}: zero frames; need at least one frame of {D} features")
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        frame, dim = np.argwhere(bad)[0]
        raise VocoderError(f"{what}: {int(bad.sum())} NaN/Inf values, first at frame "
                           f"{frame}, dimension {dim}")
    return np.asarray(arr, dtype=np.float32)  # no copy when already float32


def check_speaker(speaker, cfg: WaveNetConfig) -> int | None:
    if not cfg.n_speakers:
        if speaker is not None:
            raise VocoderError("this model has no speaker embedding (n_speakers=0); "
                               "pass speaker=None")
        return None
    if speaker is None:
        raise VocoderError(f"this model has {cfg.n_speakers} speakers: pass speaker=0.."
                           f"{cfg.n_speakers - 1}")
    if isinstance(speaker, (bool, np.bool_)) or not isinstance(speaker, (int, np.integer)):
        raise VocoderError(f"speaker must be an int in 0..{cfg.n_speakers - 1}, "
                           f"got {speaker!r}")
    if not 0 <= int(speaker) < cfg.n_speakers:
        raise VocoderError(f"unknown speaker {speaker}: this model has speakers 0.."
                           f"{cfg.n_speakers - 1}")
    return int(speaker)


def check_gc(gc, cfg: WaveNetConfig) -> np.ndarray | None:
    if not cfg.gc_channels:
        if gc is not None:
            raise VocoderError("this model takes no global vector (gc_channels=0); pass gc=None")
        return None
    if gc is None:
        raise VocoderError(f"this model needs a global vector gc of {cfg.gc_channels} values")
    arr = np.asarray(gc)
    if not np.issubdtype(arr.dtype, np.number) or arr.shape != (cfg.gc_channels,):
        raise VocoderError(f"gc: expected {cfg.gc_channels} numbers, got shape {arr.shape} "
                           f"dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise VocoderError("gc: contains NaN/Inf")
    return arr.astype(np.float32)


def check_n_samples(n_samples, features: np.ndarray | None, cfg: WaveNetConfig) -> int:
    if features is not None:
        n = features.shape[0] * cfg.hop_length
        if n_samples is not None and n_samples != n:
            raise VocoderError(f"n_samples={n_samples} disagrees with {features.shape[0]} "
                               f"frames x hop {cfg.hop_length} = {n}")
        return n
    if n_samples is None or isinstance(n_samples, bool) or not isinstance(
            n_samples, (int, np.integer)) or n_samples <= 0:
        raise VocoderError(f"an unconditional model needs n_samples > 0, got {n_samples!r}")
    return int(n_samples)


def read_npy(path: str | Path, who: str = "", mmap_mode: str | None = None):
    """``np.load`` of a .npy or .npz (no pickles) with clear errors; ``who`` prefixes them
    (e.g. "utterance 'a1': ")."""
    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"{who}{path}: no such file")
    try:
        return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise VocoderError(f"{who}{path}: not a readable .npy/.npz file ({e})") from None


def load_features_file(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read features from ``.npy`` or ``.npz`` (array ``features``, optional ``speaker``).

    Returns (features, extras) where extras may hold ``speaker`` and ``gc``.
    """
    path = Path(path)
    data = read_npy(path)
    if isinstance(data, np.ndarray):
        return data, {}
    with data:
        if "features" not in data.files:
            raise VocoderError(f"{path}: .npz must hold an array named 'features' "
                               f"(has {data.files})")
        extras = {}
        if "speaker" in data.files:
            extras["speaker"] = int(data["speaker"])
        if "gc" in data.files:
            extras["gc"] = data["gc"]
        return data["features"], extras
