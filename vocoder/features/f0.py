"""Log-F0 and voicing per frame, with pyworld (WORLD's DIO + StoneMask, or Harvest).

Frame ``i`` stands for samples ``[i*H, (i+1)*H)``, so its value is taken at the frame
centre ``(i + 0.5) * H``. WORLD analyses at times ``k * H`` (one frame period = H
samples); the centre values are interpolated from those, linearly in log-F0. A centre
counts as voiced when either WORLD neighbour is voiced.

Unvoiced frames get log-F0 interpolated linearly between the surrounding voiced frames;
before the first and after the last voiced frame the nearest voiced value is held. A
signal with no voiced frame at all gets ``log(f0_floor)`` everywhere.
"""

from __future__ import annotations

import glob
import importlib.util
import math
import os
from types import ModuleType

import numpy as np

from vocoder.errors import VocoderError

DEFAULT_F0_FLOOR = 60.0
DEFAULT_F0_CEIL = 600.0
_PYWORLD: ModuleType | None = None


def _import_pyworld() -> ModuleType:
    """Import pyworld, working around pyworld <= 0.3.5 needing ``pkg_resources``.

    pyworld's ``__init__`` imports ``pkg_resources`` only to read its own version; newer
    setuptools (>= 81) no longer ships it, so on failure the compiled extension is loaded
    directly from the installed package.
    """
    global _PYWORLD
    if _PYWORLD is not None:
        return _PYWORLD
    hint = ("pyworld is needed for F0 extraction: pip install pyworld "
            "(it builds from source with gcc and needs numpy and cython)")
    try:
        import pyworld
        _PYWORLD = pyworld
        return pyworld
    except ModuleNotFoundError as e:
        if e.name != "pkg_resources":
            raise VocoderError(hint) from None
    spec = importlib.util.find_spec("pyworld")
    paths = glob.glob(os.path.join(next(iter(spec.submodule_search_locations)), "pyworld.*"))
    paths = [p for p in paths if p.endswith((".so", ".pyd"))]
    if not paths:
        raise VocoderError(hint + " (found the package but not its compiled module)")
    ext_spec = importlib.util.spec_from_file_location("pyworld.pyworld", paths[0])
    module = importlib.util.module_from_spec(ext_spec)
    ext_spec.loader.exec_module(module)
    _PYWORLD = module
    return module


def pyworld_available() -> bool:
    """True when pyworld can be imported (never raises)."""
    try:
        _import_pyworld()
        return True
    except (VocoderError, ImportError, OSError):
        return False


def interpolate_log_f0(log_f0: np.ndarray, vuv: np.ndarray, fill: float) -> np.ndarray:
    """Fill unvoiced frames of ``log_f0`` (T,) linearly between voiced ones, edges held.

    ``vuv`` (T,) is nonzero where voiced; with no voiced frame every value is ``fill``.
    """
    voiced = np.flatnonzero(vuv > 0)
    if voiced.size == 0:
        return np.full(log_f0.shape, fill, dtype=np.float64)
    # np.interp holds the end values outside the voiced range: exactly the edge rule.
    return np.interp(np.arange(log_f0.size), voiced, log_f0[voiced])


def extract_f0(audio: np.ndarray, sample_rate: int, hop_length: int,
               n_frames: int | None = None, method: str = "dio",
               f0_floor: float = DEFAULT_F0_FLOOR,
               f0_ceil: float = DEFAULT_F0_CEIL) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame continuous log-F0 and voicing.

    Args:
        audio: (N,) mono; int16 is scaled by 1/32768, floats are used as they are.
        sample_rate, hop_length: frame ``i`` covers samples ``[i*H, (i+1)*H)``.
        n_frames: frames to return (default ``ceil(N / H)``); WORLD's track is cut or
            edge-padded to exactly this many.
        method: "dio" (DIO + StoneMask refinement; fast) or "harvest" (slower, more
            robust in noise).
        f0_floor, f0_ceil: search range in Hz.

    Returns:
        ``(log_f0, vuv)``: float32 (n_frames,) each; log_f0 in log-Hz, interpolated
        through unvoiced frames; vuv 1.0 voiced, 0.0 unvoiced.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise VocoderError(f"audio must be mono (N,), got shape {audio.shape}")
    if audio.size == 0:
        raise VocoderError("audio is empty")
    if hop_length <= 0 or sample_rate <= 0:
        raise VocoderError(f"hop_length and sample_rate must be > 0, got {hop_length}, "
                           f"{sample_rate}")
    if method not in ("dio", "harvest"):
        raise VocoderError(f"F0 method must be 'dio' or 'harvest', got {method!r}")
    if not 0 < f0_floor < f0_ceil < sample_rate / 2:
        raise VocoderError(f"need 0 < f0_floor < f0_ceil < sample_rate/2, got "
                           f"{f0_floor}, {f0_ceil}, {sample_rate}")
    if n_frames is None:
        n_frames = math.ceil(audio.size / hop_length)
    x = audio.astype(np.float64) / 32768.0 if audio.dtype == np.int16 else \
        audio.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise VocoderError("audio contains NaN or Inf")
    pw = _import_pyworld()
    frame_period_ms = 1000.0 * hop_length / sample_rate
    x = np.ascontiguousarray(x)
    if method == "dio":
        f0, t = pw.dio(x, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil,
                       frame_period=frame_period_ms)
        f0 = pw.stonemask(x, f0, t, sample_rate)
    else:
        f0, t = pw.harvest(x, sample_rate, f0_floor=f0_floor, f0_ceil=f0_ceil,
                           frame_period=frame_period_ms)
    # WORLD frame k sits at sample k*H; we need k = 0 .. n_frames (both neighbours of
    # every centre), so hold the last value if WORLD returned fewer.
    need = n_frames + 1
    if f0.size < need:
        f0 = np.concatenate([f0, np.full(need - f0.size, f0[-1] if f0.size else 0.0)])
    f0 = f0[:need]
    voiced = f0 > 0
    log_f0 = np.log(np.where(voiced, f0, 1.0))
    log_f0 = interpolate_log_f0(log_f0, voiced, fill=math.log(f0_floor))
    centre_log_f0 = 0.5 * (log_f0[:-1] + log_f0[1:])
    centre_vuv = voiced[:-1] | voiced[1:]
    return centre_log_f0.astype(np.float32), centre_vuv.astype(np.float32)
