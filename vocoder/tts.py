"""Text-to-speech with the vocoder: eSpeak NG as the front end (phones, timing, F0 from
its own rendering), our frame features, the WaveNet as the waveform generator.

A model trained on the built-in eSpeak corpus records its speakers' eSpeak voices in the
bundle, so speaker ``k`` is driven with the features eSpeak's voice ``k`` gives.
"""

from __future__ import annotations

import numpy as np

from vocoder.errors import VocoderError


def bundle_voices(vocoder) -> list[str]:
    """The eSpeak voice of each speaker of a model trained on an eSpeak corpus."""
    corpus = (vocoder.bundle.training or {}).get("corpus") or {}
    voices = corpus.get("speakers") or []
    if not voices:
        raise VocoderError(f"{vocoder.bundle.path}: this bundle records no eSpeak voices "
                           "(it was not trained on `vocoder corpus espeak` data), so "
                           "`vocoder say` cannot drive it")
    return list(voices)


def text_features(vocoder, text: str, speaker: int = 0,
                  pitch_shift: float = 0.0) -> np.ndarray:
    """Raw frame features (Tf, D) for ``text`` spoken as ``speaker``, F0 shifted by
    ``pitch_shift`` semitones."""
    from vocoder.features.frontend import text_to_features
    from vocoder.features.linguistic import feature_names

    if not isinstance(text, str) or not text.strip():
        raise VocoderError("say: the text is empty")
    voices = bundle_voices(vocoder)
    if not 0 <= speaker < len(voices):
        raise VocoderError(f"unknown speaker {speaker}: this model has speakers "
                           f"0..{len(voices) - 1} ({', '.join(voices)})")
    spec = vocoder.feature_spec
    if spec is not None and list(spec.names) != feature_names():
        raise VocoderError(f"{vocoder.bundle.path}: the model's features are not the eSpeak "
                           "front end's (different names); `say` needs a model trained on "
                           "`vocoder corpus espeak` data")
    return text_to_features(text, voices[speaker], sample_rate=vocoder.sample_rate,
                            hop_length=vocoder.hop_length,
                            pitch_shift_semitones=float(pitch_shift))
