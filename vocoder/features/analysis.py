"""Audio -> the frame features of a mel-conditioned model, as datasets store them.

The same function builds a mel dataset (:mod:`vocoder.data.mel_corpus`) and analyses a
recording for copy synthesis (:mod:`vocoder.resynth`), so a model is given at synthesis
exactly what it was trained on: ``(T, n_mels)`` log-mel frames
(:func:`vocoder.features.mel.mel_frames`, frame i for samples ``[i*hop, (i+1)*hop)``),
followed, for a model trained with F0, by ``log_f0`` and ``vuv`` columns
(:func:`vocoder.features.f0.extract_f0` at the same frames).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.mel import MelConfig, mel_feature_names, mel_frames

F0_COLUMNS = ("log_f0", "vuv")


def feature_names(mel: MelConfig, f0: bool) -> list[str]:
    """Column names: mel_0 .. mel_{n-1}, then log_f0 and vuv when ``f0``."""
    return mel_feature_names(mel) + (list(F0_COLUMNS) if f0 else [])


def binary_mask(mel: MelConfig, f0: bool) -> list[bool]:
    """Columns normalisation leaves alone: only the voicing flag."""
    return [False] * mel.n_mels + ([False, True] if f0 else [])


def reads_f0(names, mel: MelConfig) -> bool:
    """Whether features named ``names`` (a spec's or a dataset's) carry F0 after the mels,
    and a VocoderError when they are neither ``mel_*`` alone nor followed by F0."""
    names = list(names)
    for f0 in (False, True):
        if names == feature_names(mel, f0):
            return f0
    raise VocoderError(f"mel features must be named {mel_feature_names(mel)[:2]}... "
                       f"(optionally followed by {list(F0_COLUMNS)}); got {names[:3]}... "
                       f"({len(names)} names)")


def frame_features(audio: np.ndarray, mel: MelConfig, f0: bool = False,
                   f0_method: str = "dio") -> np.ndarray:
    """Audio (N,) at ``mel.sample_rate`` (int16, or float in [-1, 1]) -> float32 (T, D)
    raw features, T = ceil(N / hop): the audio zero-padded to T * hop samples is what
    they describe."""
    audio = np.asarray(audio)
    feats = mel_frames(audio, mel).T
    if f0:
        from vocoder.features.f0 import extract_f0

        t = feats.shape[0]
        padded = np.pad(audio, (0, t * mel.hop_length - audio.size))
        log_f0, vuv = extract_f0(padded, mel.sample_rate, mel.hop_length, t, method=f0_method)
        feats = np.concatenate([feats, log_f0[:, None], vuv[:, None]], axis=1)
    return np.ascontiguousarray(feats, dtype=np.float32)


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Float audio (N,) -> float64 (round(N * target / source),) with soxr (HQ), the
    resampler the built-in corpus uses."""
    x = np.asarray(audio, dtype=np.float64)
    if source_rate == target_rate:
        return x
    try:
        import soxr
    except ImportError:
        raise VocoderError(f"the audio is at {source_rate} Hz and must be resampled to "
                           f"{target_rate} Hz, which needs soxr: pip install soxr") from None
    return soxr.resample(x, source_rate, target_rate, quality="HQ")


def read_audio(path: str | Path) -> tuple[np.ndarray, int, int]:
    """A sound file -> (float64 mono (N,) in [-1, 1], sample rate, channels it had).
    Several channels are averaged."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"{path}: no such file")
    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except RuntimeError as e:  # soundfile's errors (unknown format, truncated file)
        raise VocoderError(f"{path}: cannot read it as audio ({e})") from None
    if audio.shape[0] == 0:
        raise VocoderError(f"{path}: no samples")
    return audio.mean(axis=1), int(rate), int(audio.shape[1])
