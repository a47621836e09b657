"""Copy synthesis: a recording -> the bundle's own mel analysis -> the bundle's audio.

The mels are computed as the bundle's training data were (:mod:`vocoder.features.analysis`:
the audio at the bundle's rate, zero-padded to whole frames; log-F0 and voicing too when
the model reads them), so what comes out measures the vocoder alone.
"""

from __future__ import annotations

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.mel import MelConfig
from vocoder.features.spec import FeatureSpec


def mel_of(spec: FeatureSpec | None, where="the bundle") -> MelConfig:
    """The mel analysis of a bundle's feature spec; a VocoderError for other features."""
    if spec is None or spec.mel is None:
        raise VocoderError(f"{where} is not mel-conditioned (it reads its own frame "
                           f"features): copy synthesis needs a bundle trained on mels "
                           f"(vocoder features --mel)")
    return spec.mel


def at_rate(spec: FeatureSpec | None, audio: np.ndarray, sample_rate: int,
            resample: bool = True, where="the bundle") -> np.ndarray:
    """Float audio (N,) at ``sample_rate`` -> float64 at the mel analysis's rate (soxr);
    a different rate is an error when ``resample`` is False."""
    from vocoder.features import analysis

    mel = mel_of(spec, where)
    if sample_rate != mel.sample_rate and not resample:
        raise VocoderError(f"the audio is at {sample_rate} Hz, {where} at "
                           f"{mel.sample_rate} Hz: resample it first (or allow resampling)")
    return analysis.resample(audio, sample_rate, mel.sample_rate)


def analyze(spec: FeatureSpec | None, audio: np.ndarray, f0_method: str = "dio",
            where="the bundle") -> np.ndarray:
    """The raw (T, D) features a mel bundle with feature spec ``spec`` reads for
    ``audio`` (N,) float in [-1, 1] at its rate (:func:`at_rate`): T = ceil(N / hop)."""
    from vocoder.features import analysis

    mel = mel_of(spec, where)
    f0 = analysis.reads_f0(spec.names, mel)
    return analysis.frame_features(audio, mel, f0=f0, f0_method=f0_method)


def resynthesize(voc, audio: np.ndarray, sample_rate: int, *, speaker: int | None = None,
                 seed: int = 0, temperature: float | None = None,
                 voiced_temperature: float | None = None, resample: bool = True,
                 progress: bool = False, postfilter: int | None = None) -> np.ndarray:
    """Audio (N,) float in [-1, 1] at ``sample_rate`` -> float32 audio at
    ``voc.sample_rate`` of the same duration (``voc``: a :class:`~vocoder.api.Vocoder`
    of a mel bundle): :func:`at_rate`, :func:`analyze`, synthesis, cut to the resampled
    input's length."""
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size == 0:
        raise VocoderError(f"audio must be mono (N,) with N > 0, got shape {audio.shape}")
    where = str(voc.bundle.path)
    x = at_rate(voc.feature_spec, audio, sample_rate, resample, where)
    feats = analyze(voc.feature_spec, x, where=where)
    out = voc.synthesize(feats, speaker=speaker, seed=seed, temperature=temperature,
                         voiced_temperature=voiced_temperature, progress=progress,
                         layout="frames-first", postfilter=postfilter)
    return out[:x.size]
