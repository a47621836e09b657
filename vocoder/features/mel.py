"""Log mel spectrograms in the conventions acoustic models emit, computed with librosa.

A :class:`MelConfig` is every parameter of one analysis; it is stored in the feature spec
of every mel-conditioned bundle (:class:`vocoder.features.spec.FeatureSpec`), so synthesis
knows which mels a model reads. Named presets (:data:`PRESETS`) give the field's
conventions; :func:`preset` takes any of them with fields changed (another sample rate,
hop or window).

Frames and samples
------------------
The model turns T frames into T * hop samples: frame i conditions samples
``[i*hop, (i+1)*hop)``. The audio is first zero-padded at the end to a whole number of
frames, T = ceil(N / hop), and then analysed:

* ``padding="same"`` (HiFi-GAN's ``mel_spectrogram``, Vocos' "same"): the signal is
  reflect-padded by ``(n_fft - hop) / 2`` on each side and framed without centring, so
  it gives exactly T frames and frame i is centred on sample ``(i + 1/2) * hop``, the
  middle of the samples it conditions.
* ``padding="center"`` (librosa's and torchaudio's ``center=True``: NVIDIA's Tacotron 2,
  Vocos' default, ParallelWaveGAN): ``n_fft / 2`` on each side, T + 1 frames, frame i
  centred on sample ``i * hop``. The last frame (centred on the end of the padded audio)
  conditions nothing and is dropped; frame i, centred half a hop earlier than the samples
  it conditions, still describes them: the window spans several hops.

:func:`log_mel` returns every frame of the convention (what an acoustic model trained on
it predicts); :func:`mel_frames` returns the T frames the dataset stores.

librosa is imported on first use (it takes a moment), so reading a bundle's
:class:`MelConfig` needs only the standard library.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vocoder.errors import VocoderError

MEL_SCALES = ("slaney", "htk")
NORMS = ("slaney", None)
LOGS = ("ln", "log10")
PADDINGS = ("same", "center")
PAD_MODES = ("reflect", "constant")


@dataclass(frozen=True)
class MelConfig:
    """One log-mel analysis. Output: ``log(max(M @ |STFT|^power, clamp))`` per frame.

    ``fmax`` None is the Nyquist frequency. ``mel_scale``/``norm`` are librosa's
    ``htk``/``norm`` of ``librosa.filters.mel`` ("slaney" scale is librosa's default,
    ``htk=False``; torchaudio's default is "htk" with no norm). ``power`` 1 is the
    magnitude, 2 the power. ``eps`` is added to ``|X|^2`` before its square root (HiFi-GAN
    adds 1e-9; only with ``power`` 1). ``log`` is the natural log ("ln") or "log10".
    ``padding`` places the frames (module docstring); ``pad_mode`` fills the padding.
    The window is Hann (periodic, as librosa, torch and torchaudio use it).
    ``name`` is the preset this came from ("custom" when changed); it is not part of the
    analysis, so two configs with different names but the same parameters are equal.
    """

    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    n_mels: int
    fmin: float = 0.0
    fmax: float | None = None
    mel_scale: str = "slaney"
    norm: str | None = "slaney"
    power: float = 1.0
    eps: float = 0.0
    log: str = "ln"
    clamp: float = 1e-5
    padding: str = "same"
    pad_mode: str = "reflect"
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        for f in ("fmin", "power", "eps", "clamp"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise VocoderError(f"mel config: {f} must be a number, got {value!r}")
            object.__setattr__(self, f, float(value))
        if self.fmax is not None:
            if isinstance(self.fmax, bool) or not isinstance(self.fmax, (int, float)):
                raise VocoderError(f"mel config: fmax must be a number or null, got "
                                   f"{self.fmax!r}")
            object.__setattr__(self, "fmax", float(self.fmax))
        for f in ("sample_rate", "n_fft", "hop_length", "win_length", "n_mels"):
            value = getattr(self, f)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise VocoderError(f"mel config: {f} must be an int > 0, got {value!r}")
        checks = (
            (self.win_length <= self.n_fft,
             f"win_length {self.win_length} must be <= n_fft {self.n_fft}"),
            (self.hop_length <= self.n_fft,
             f"hop_length {self.hop_length} must be <= n_fft {self.n_fft}"),
            (0 <= self.fmin < self.fmax_hz <= self.sample_rate / 2,
             f"need 0 <= fmin < fmax <= sample_rate / 2, got fmin {self.fmin}, fmax "
             f"{self.fmax}, sample_rate {self.sample_rate}"),
            (self.mel_scale in MEL_SCALES,
             f"mel_scale must be one of {MEL_SCALES}, got {self.mel_scale!r}"),
            (self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}"),
            (self.power in (1.0, 2.0), f"power must be 1 (magnitude) or 2, got {self.power}"),
            (self.eps >= 0 and (self.eps == 0 or self.power == 1.0),
             f"eps must be >= 0, and only with power 1, got {self.eps}"),
            (self.log in LOGS, f"log must be one of {LOGS}, got {self.log!r}"),
            (self.clamp > 0, f"clamp must be > 0, got {self.clamp}"),
            (self.padding in PADDINGS,
             f"padding must be one of {PADDINGS}, got {self.padding!r}"),
            (self.pad_mode in PAD_MODES,
             f"pad_mode must be one of {PAD_MODES}, got {self.pad_mode!r}"),
        )
        for ok, msg in checks:
            if not ok:
                raise VocoderError(f"mel config: {msg}")

    @property
    def fmax_hz(self) -> float:
        return float(self.sample_rate) / 2 if self.fmax is None else self.fmax

    def to_log(self, mel: np.ndarray | float) -> np.ndarray:
        """The analysis's log (natural or base 10) of clamped mel values."""
        return np.log(mel) if self.log == "ln" else np.log10(mel)

    @property
    def log_floor(self) -> float:
        """The smallest log mel the analysis gives: its clamp, logged."""
        return float(self.to_log(self.clamp))

    def replace(self, **changes: Any) -> MelConfig:
        """A copy with ``changes``; named "custom" unless ``name`` is given."""
        changes.setdefault("name", "custom")
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line for messages: preset, bands, hop and rate first (what usually differs)."""
        what = "magnitude" if self.power == 1 else "power"
        log = "natural log" if self.log == "ln" else "log10"
        return (f"preset {self.name!r}: {self.n_mels} bands, hop {self.hop_length} at "
                f"{self.sample_rate} Hz, n_fft {self.n_fft}, window {self.win_length}, "
                f"{self.fmin:g}-{self.fmax_hz:g} Hz, {self.mel_scale} mel scale, "
                f"{log} of the {what} clamped at {self.clamp:g}, padding {self.padding!r}")

    def differences(self, other: MelConfig) -> list[str]:
        """Fields (other than ``name``) whose values differ, in declaration order; fmax
        in Hz (None is the Nyquist frequency)."""
        value = lambda c, f: c.fmax_hz if f == "fmax" else getattr(c, f)
        return [f.name for f in dataclasses.fields(self) if f.compare
                and value(self, f.name) != value(other, f.name)]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> MelConfig:
        """From :meth:`to_dict`'s JSON; a VocoderError naming unknown, missing or invalid
        fields."""
        if not isinstance(d, dict):
            raise VocoderError(f"mel config must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VocoderError(f"unknown mel config keys {unknown}; known: {sorted(known)}")
        try:
            return cls(**d)
        except TypeError as e:  # a missing field
            raise VocoderError(f"mel config: {e}") from None


#: The field's conventions. See the README's "Mel spectrograms" for which acoustic models
#: emit which.
PRESETS: dict[str, MelConfig] = {
    # HiFi-GAN's meldataset.mel_spectrogram (LJSpeech config v1): 22.05 kHz, Slaney mel
    # filters (librosa's defaults), sqrt(|X|^2 + 1e-9), natural log clamped at 1e-5,
    # reflect padding of (n_fft - hop) / 2 per side without centring.
    "hifigan": MelConfig(22050, 1024, 256, 1024, 80, 0.0, 8000.0, "slaney", "slaney",
                         1.0, 1e-9, "ln", 1e-5, "same", "reflect", name="hifigan"),
    # NVIDIA's Tacotron 2 (TacotronSTFT): the same filters and log, the magnitude without
    # an epsilon, frames centred (n_fft / 2 reflect padding per side).
    "tacotron2": MelConfig(22050, 1024, 256, 1024, 80, 0.0, 8000.0, "slaney", "slaney",
                           1.0, 0.0, "ln", 1e-5, "center", "reflect", name="tacotron2"),
    # Vocos' MelSpectrogramFeatures (torchaudio defaults): 24 kHz, 100 bands up to
    # Nyquist, HTK mel scale without normalisation, natural log clamped at 1e-7, centred.
    "vocos": MelConfig(24000, 1024, 256, 1024, 100, 0.0, None, "htk", None,
                       1.0, 0.0, "ln", 1e-7, "center", "reflect", name="vocos"),
    # ParallelWaveGAN's logmelfilterbank (LJSpeech recipe; ESPnet1 features): 80-7600 Hz,
    # Slaney filters, log10 of the magnitude clamped at 1e-10, centred. (Its recipes then
    # mean-variance normalise; a bundle stores its own normalisation, so pass raw log10
    # mels.)
    "parallelwavegan": MelConfig(22050, 1024, 256, 1024, 80, 80.0, 7600.0, "slaney",
                                 "slaney", 1.0, 0.0, "log10", 1e-10, "center", "reflect",
                                 name="parallelwavegan"),
    # HiFi-GAN's analysis at 16 kHz with Tacotron 2's 12.5 ms hop and 50 ms window:
    # hop 200 = 5 x 5 x 8, the built-in corpus's rate (the mel demo's preset).
    "hifigan-16k": MelConfig(16000, 1024, 200, 800, 80, 0.0, 8000.0, "slaney", "slaney",
                             1.0, 1e-9, "ln", 1e-5, "same", "reflect", name="hifigan-16k"),
}


def preset(name: str, **changes: Any) -> MelConfig:
    """Preset ``name`` with ``changes`` (e.g. ``sample_rate=16000``); a VocoderError naming
    the presets for an unknown name or field."""
    if name not in PRESETS:
        raise VocoderError(f"unknown mel preset {name!r}; presets: {', '.join(PRESETS)}")
    if not changes:
        return PRESETS[name]
    known = {f.name for f in dataclasses.fields(MelConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise VocoderError(f"unknown mel config fields {unknown}; known: {sorted(known)}")
    base = PRESETS[name]
    label = ", ".join(f"{k}={v}" for k, v in changes.items() if k != "name")
    out = base.replace(**{"name": f"{name} with {label}", **changes})
    # Still the preset when nothing actually changed.
    return base if out == base else out


def resolve(config: MelConfig | str | dict[str, Any]) -> MelConfig:
    """A :class:`MelConfig` from itself, a preset name or its dict."""
    if isinstance(config, MelConfig):
        return config
    if isinstance(config, str):
        return preset(config)
    if isinstance(config, dict):
        return MelConfig.from_dict(config)
    raise VocoderError(f"a mel config is a preset name ({', '.join(PRESETS)}), a MelConfig "
                       f"or its dict; got {type(config).__name__}")


def parse_value(text: str) -> Any:
    """A command-line ``KEY=VALUE`` value: null/none, true/false, int, float or string."""
    low = text.strip().lower()
    if low in ("null", "none"):
        return None
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _librosa():
    try:
        import librosa
    except ImportError:
        raise VocoderError("mel spectrograms and the mel post-filter need librosa (a "
                           "dependency of this package): pip install librosa") from None
    return librosa


@functools.lru_cache(maxsize=16)
def filter_bank(cfg: MelConfig) -> np.ndarray:
    """float64 (n_mels, n_fft // 2 + 1): librosa's mel filters for ``cfg``."""
    return _librosa().filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels,
                                  fmin=cfg.fmin, fmax=cfg.fmax_hz,
                                  htk=cfg.mel_scale == "htk", norm=cfg.norm,
                                  dtype=np.float64)


def _as_float(audio) -> np.ndarray:
    """(N,) audio as float64 in [-1, 1] (int16 is scaled by 1/32768)."""
    x = np.asarray(audio)
    if x.ndim != 1:
        raise VocoderError(f"audio must be mono (N,), got shape {x.shape}")
    if x.size == 0:
        raise VocoderError("audio is empty")
    if x.dtype == np.int16:
        return x.astype(np.float64) / 32768.0
    if not np.issubdtype(x.dtype, np.floating):
        raise VocoderError(f"audio must be int16 or float, got {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise VocoderError("audio contains NaN or Inf")
    return x


def log_mel(audio, cfg: MelConfig) -> np.ndarray:
    """Audio (N,) int16 or float in [-1, 1] -> float32 log mel (n_mels, frames).

    Every frame of the convention: ``floor(N / hop)`` with ``padding="same"``,
    ``1 + floor(N / hop)`` with "center" (librosa's count)."""
    librosa = _librosa()
    x = _as_float(audio)
    center = cfg.padding == "center"
    if not center:
        left = (cfg.n_fft - cfg.hop_length) // 2
        x = np.pad(x, (left, cfg.n_fft - cfg.hop_length - left), mode=cfg.pad_mode)
    with warnings.catch_warnings():
        # librosa warns when a centred signal is shorter than n_fft; its padding is the
        # convention's all the same (a clip of a few frames is a valid input).
        warnings.filterwarnings("ignore", message="n_fft=.* is too large for input signal")
        spec = librosa.stft(x, n_fft=cfg.n_fft, hop_length=cfg.hop_length,
                            win_length=cfg.win_length, window="hann", center=center,
                            pad_mode=cfg.pad_mode)
    power = spec.real ** 2 + spec.imag ** 2
    mag = np.sqrt(power + cfg.eps) if cfg.power == 1.0 else power
    mel = np.maximum(filter_bank(cfg) @ mag, cfg.clamp)
    return cfg.to_log(mel).astype(np.float32)


def n_frames(n_samples: int, hop_length: int) -> int:
    """Frames of ``n_samples`` of audio: ``ceil(N / hop)``, at least one."""
    return max(1, math.ceil(n_samples / hop_length))


def mel_frames(audio, cfg: MelConfig) -> np.ndarray:
    """Audio (N,) -> float32 (n_mels, T) with T = ceil(N / hop): the frames that condition
    the audio zero-padded to T * hop samples (module docstring)."""
    x = np.asarray(audio)
    t = n_frames(x.size, cfg.hop_length)
    x = np.pad(x, (0, t * cfg.hop_length - x.size))
    return log_mel(x, cfg)[:, :t]


def mel_feature_names(cfg: MelConfig) -> list[str]:
    """Names of the mel columns in a dataset and a feature spec: mel_0 .. mel_{n-1}."""
    return [f"mel_{k}" for k in range(cfg.n_mels)]
