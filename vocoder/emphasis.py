"""Pre-emphasis noise shaping: the model's classes are those of ``x[t] - a x[t-1]``.

A WaveNet's sampling error is close to white in the domain it models. Modelling the
pre-emphasised waveform and de-emphasising what it generates (LPCNet; Tachibana et al.,
"An investigation of noise shaping with perceptual weighting for WaveNet-based speech
generation", ICASSP 2018) shapes that error like speech's own downward spectral tilt, so
it hides under the formants instead of filling the quiet high bands.

``coef`` = 0 is the identity: a model without pre-emphasis.

    pre-emphasis:  e[t] = x[t] - a x[t-1]             (x[-1] = 0)
    de-emphasis:   y[t] = e[t] + a y[t-1]             (its inverse; y[-1] carried)
"""

from __future__ import annotations

import numpy as np

from vocoder.mulaw import as_float64, dequantize, quantize


def preemphasize(x: np.ndarray, coef: float) -> np.ndarray:
    """(T,) float audio in [-1, 1] or int16 PCM -> (T,) float64 ``x[t] - coef * x[t-1]``,
    starting from silence."""
    x = as_float64(x)
    if coef == 0.0 or x.size == 0:
        return x
    out = x.copy()
    out[1:] -= coef * x[:-1]
    return out


def deemphasize(e: np.ndarray, coef: float, last: float = 0.0) -> tuple[np.ndarray, float]:
    """Invert :func:`preemphasize` on a chunk: (T,) -> ((T,) float32, new ``last``).

    ``last`` is the de-emphasised sample before the chunk (0.0 at the start of an
    utterance); feed the returned one into the next chunk, and chunked de-emphasis equals
    the whole utterance's. Without pre-emphasis the chunk comes back as it is (float32,
    not copied): the default path of every synthesis."""
    if coef == 0.0 or len(e) == 0:
        return np.asarray(e, dtype=np.float32), float(last)
    from scipy.signal import lfilter

    y, _ = lfilter([1.0], [1.0, -coef], np.asarray(e, dtype=np.float64),
                   zi=[coef * float(last)])
    return y.astype(np.float32), float(y[-1])


def audio_to_classes(audio: np.ndarray, channels: int, coef: float) -> np.ndarray:
    """(T,) audio -> (T,) int64 mu-law classes of its pre-emphasised form: what a model
    with ``preemphasis = coef`` reads and predicts."""
    return quantize(preemphasize(audio, coef), channels)


def classes_to_audio(classes: np.ndarray, channels: int, coef: float,
                     last: float = 0.0) -> tuple[np.ndarray, float]:
    """Inverse of :func:`audio_to_classes` up to quantisation, chunk by chunk as
    :func:`deemphasize`: (T,) classes -> ((T,) float32 audio, new ``last``)."""
    return deemphasize(dequantize(classes, channels), coef, last)
