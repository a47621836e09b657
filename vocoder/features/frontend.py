"""Text -> frame features (and the matching audio), the pipeline shared by corpus and TTS.

Steps: eSpeak NG speaks the text (audio at 22,050 Hz + timed, stressed phones); the audio
is resampled to ``sample_rate`` with soxr (a band-limited resampler, never by dropping
samples) and rounded to int16; it is then zero-padded at the end to a whole number of
frames, ``n_frames = ceil(N / H)`` (nothing is ever cut, so no speech is lost; eSpeak
ends in silence, so the padding is silence too). Linguistic features come from the
phones (``vocoder.features.linguistic``), log-F0 and voicing from the padded int16 audio
(``vocoder.features.f0``), so the features describe exactly the samples a corpus stores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features import espeak, f0, linguistic

_LN2_OVER_12 = float(np.log(2.0) / 12.0)


@dataclass(frozen=True)
class Utterance:
    """``audio``: int16 (n_frames * H,) at the target rate; ``features``: float32
    (n_frames, D) in ``linguistic.feature_names()`` order; ``synthesis``: eSpeak's output."""

    audio: np.ndarray
    features: np.ndarray
    synthesis: espeak.Synthesis


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """int16 (N,) at ``source_rate`` -> int16 (round(N * target / source),) via soxr (HQ)."""
    if source_rate == target_rate:
        return np.asarray(audio, dtype=np.int16).copy()
    try:
        import soxr
    except ImportError:
        raise VocoderError("soxr is needed for resampling: pip install soxr") from None
    x = np.asarray(audio, dtype=np.float32) / 32768.0
    y = soxr.resample(x, source_rate, target_rate, quality="HQ")
    return np.clip(np.round(y * 32768.0), -32768, 32767).astype(np.int16)


def pad_to_frames(audio: np.ndarray, hop_length: int) -> np.ndarray:
    """Zero-pad (N,) at the end to ``ceil(N / H) * H`` samples (at least one frame)."""
    n = linguistic.n_frames_for(audio.size, hop_length) * hop_length
    return np.concatenate([audio, np.zeros(n - audio.size, dtype=audio.dtype)])


def synthesize_utterance(text: str, voice: str = "en-us", sample_rate: int = 16000,
                         hop_length: int = 80, rate_wpm: int = 175,
                         f0_method: str = "dio") -> Utterance:
    """Speak ``text`` and compute its frame features; see the module docstring."""
    if sample_rate <= 0 or hop_length <= 0:
        raise VocoderError(f"sample_rate and hop_length must be > 0, got {sample_rate}, "
                           f"{hop_length}")
    syn = espeak.synthesize(text, voice, rate_wpm=rate_wpm)
    audio = pad_to_frames(resample(syn.audio, syn.sample_rate, sample_rate), hop_length)
    n_frames = audio.size // hop_length
    ling = linguistic.linguistic_features(syn.phones, syn.sample_rate, n_frames,
                                          sample_rate=sample_rate, hop_length=hop_length)
    log_f0, vuv = f0.extract_f0(audio, sample_rate, hop_length, n_frames=n_frames,
                                method=f0_method)
    return Utterance(audio=audio, features=linguistic.assemble(ling, log_f0, vuv),
                     synthesis=syn)


def text_to_features(text: str, voice: str = "en-us", sample_rate: int = 16000,
                     hop_length: int = 80, pitch_shift_semitones: float = 0.0) -> np.ndarray:
    """Text -> float32 (T_frames, D) features, the same as the built-in corpus stores.

    ``pitch_shift_semitones`` adds ``semitones * ln(2) / 12`` to log-F0 on every frame
    (voiced or not, since log-F0 is continuous).
    """
    if not np.isfinite(pitch_shift_semitones):
        raise VocoderError(f"pitch_shift_semitones must be finite, got {pitch_shift_semitones}")
    feats = synthesize_utterance(text, voice, sample_rate, hop_length).features
    if pitch_shift_semitones:
        col = linguistic.feature_names().index("log_f0")
        feats[:, col] += np.float32(pitch_shift_semitones * _LN2_OVER_12)
    return feats
