"""Validation of what users pass to public entry points: clear errors, never a traceback
from deep inside numpy or torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vocoder.config import WaveNetConfig
from vocoder.errors import VocoderError
from vocoder.features.spec import FeatureSpec

#: How frame features may be laid out: (T, D), or (D, T) as acoustic models emit mels.
LAYOUTS = ("frames-first", "channels-first")


def as_array(x, what: str = "features") -> np.ndarray:
    """``x`` as a numpy array; a torch tensor (any device, with grad, half precision) is
    copied to the host, floats as float32. torch is never imported here."""
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
        x = x.detach().cpu()
        return (x.float() if x.is_floating_point() else x).numpy()
    try:
        return np.asarray(x)
    except Exception as e:  # ragged lists and the like
        raise VocoderError(f"{what}: expected a float array; got {e}") from None


def batch_items(features, what: str = "features") -> list[np.ndarray] | None:
    """The B utterances of a batched input, (B, D, T) or (B, T, D), numpy or torch; None
    when ``features`` is not 3-D."""
    if features is None:
        return None
    arr = as_array(features, what)
    if arr.ndim != 3:
        return None
    if arr.shape[0] == 0:
        raise VocoderError(f"{what}: an empty batch, shape {arr.shape}")
    return list(arr)


def _mel_expectation(spec: FeatureSpec) -> str:
    """What a mel bundle reads, for error messages."""
    mel, d = spec.mel, spec.dim
    rows = f"{mel.n_mels} log-mel bands" + (", then log_f0 and vuv," if d > mel.n_mels
                                             else "")
    return (f"this bundle is mel-conditioned: it reads {rows} per frame ({mel.describe()}), "
            f"as an array ({d}, T) or (B, {d}, T), the layout acoustic models emit, or "
            f"frames-first (T, {d})")


def _band_hint(shape: tuple[int, ...]) -> str:
    """Which presets an axis of ``shape`` looks like the band count of."""
    from vocoder.features.mel import PRESETS

    hits = [f"{n} ({p.n_mels} bands)" for n, p in PRESETS.items() if p.n_mels in shape]
    return f"; an axis of this shape matches the presets {', '.join(hits)}" if hits else ""


def _orient(arr: np.ndarray, spec: FeatureSpec | None, D: int, layout: str | None,
            what: str) -> np.ndarray:
    """(T, D) from a 2-D ``arr`` in ``layout`` (None: frames-first, or for a mel bundle
    whichever axis has D entries, channels-first when both do)."""
    mel = spec is not None and spec.mel is not None
    if layout not in (None, *LAYOUTS):
        raise VocoderError(f"layout must be one of {LAYOUTS} or None (automatic), got "
                           f"{layout!r}")
    if layout is None:
        layout = "frames-first"
        if mel and arr.shape[0] == D:
            layout = "channels-first"  # the field's layout, and the reading of a square array
    axis = 0 if layout == "channels-first" else 1
    if arr.shape[axis] != D:
        if mel:
            raise VocoderError(f"{what}: got shape {arr.shape}; {_mel_expectation(spec)}"
                               f"{_band_hint(arr.shape)} (how to vocode another acoustic "
                               f"model's mels: the README's \"Mel spectrograms\")")
        shape = f"({D}, frames)" if axis == 0 else f"(frames, {D})"
        raise VocoderError(f"{what}: expected {D} feature dimensions per frame, "
                           f"got {arr.shape[axis]} (shape {arr.shape}; expected {shape})")
    return arr.T if axis == 0 else arr


def check_features(features, cfg: WaveNetConfig, what: str = "features", *,
                   spec: FeatureSpec | None = None, layout: str | None = None
                   ) -> np.ndarray | None:
    """-> (Tf, D) float32, or None for a model without local conditioning.

    ``features``: numpy or torch, (Tf, D), or (1, Tf, D) for one utterance; channels-first
    (D, Tf) / (1, D, Tf) with ``layout="channels-first"``. For a mel bundle (``spec.mel``)
    the layout is found from the shape when not given: (n_mels, T) as acoustic models emit
    mels, or (T, n_mels); a square array is read channels-first.
    """
    D = cfg.cond_channels
    if not D:
        if features is not None:
            raise VocoderError(f"this model has no local conditioning (cond_channels=0): "
                               f"pass {what}=None and n_samples")
        return None
    mel = spec is not None and spec.mel is not None
    if features is None:
        raise VocoderError(f"this model needs {what}: "
                           + (_mel_expectation(spec) if mel else
                              f"a float array (frames, {D})"))
    arr = as_array(features, what)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) \
            or not np.issubdtype(arr.dtype, np.floating):
        raise VocoderError(f"{what}: expected a floating-point array (frames, {D}), "
                           f"got dtype {arr.dtype}")
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3:
        raise VocoderError(f"{what}: a batch of {arr.shape[0]} utterances (shape "
                           f"{arr.shape}) where one is expected; synthesize and "
                           f"synthesize_batch take batches")
    if arr.ndim != 2:
        raise VocoderError(f"{what}: expected shape (frames, {D}), got {arr.shape}"
                           + (f"; {_mel_expectation(spec)}" if mel else ""))
    arr = _orient(arr, spec, D, layout, what)
    if arr.shape[0] == 0:
        raise VocoderError(f"{what}: zero frames; need at least one frame of {D} features")
    if not np.isfinite(arr).all():
        bad = ~np.isfinite(arr)
        frame, dim = np.argwhere(bad)[0]
        raise VocoderError(f"{what}: {int(bad.sum())} NaN/Inf values, first at frame "
                           f"{frame}, dimension {dim}")
    return np.ascontiguousarray(arr, dtype=np.float32)  # no copy when already so


# Frame placement and HiFi-GAN's magnitude epsilon are not compared: they move frames by
# half a hop or change values far below the clamp, which vocoders tolerate (HiFi-GAN
# vocodes Tacotron 2's centred mels).
_MEL_TOLERATED = ("padding", "pad_mode", "eps")


def check_mel_config(given, spec: FeatureSpec | None) -> None:
    """Refuse mels made with another analysis than the bundle's (``given``: a preset
    name, a :class:`~vocoder.features.mel.MelConfig` or its dict; None checks nothing)."""
    if given is None:
        return
    from vocoder.features.mel import resolve

    given = resolve(given)
    if spec is None or spec.mel is None:
        raise VocoderError(f"mel_config {given.name!r} given, but this bundle is not "
                           f"mel-conditioned (it reads its own frame features)")
    want = spec.mel
    diff = [f for f in want.differences(given) if f not in _MEL_TOLERATED]
    if not diff:
        return
    advice = ""
    if {"sample_rate", "hop_length"} & set(diff):
        advice = (f" A vocoder runs at one rate and hop: resample the acoustic model's "
                  f"training audio to {want.sample_rate} Hz and train it on this bundle's "
                  f"mels, or train a vocoder on mels of {given.name!r} (hop "
                  f"{given.hop_length} = the product of upsample_scales).")
    raise VocoderError(f"the mels were made with {given.describe()}; this bundle reads "
                       f"{want.describe()}. They differ in {', '.join(diff)}.{advice}")


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
    """Read features from ``.npy`` or ``.npz`` (array ``features``, or ``mel`` for a saved
    mel spectrogram; optional ``speaker``, ``gc``, and ``mel_config``, the JSON of the
    analysis the mel was made with).

    Returns (features, extras) where extras may hold ``speaker``, ``gc`` and
    ``mel_config`` (a dict, for :func:`check_mel_config`).
    """
    path = Path(path)
    data = read_npy(path)
    if isinstance(data, np.ndarray):
        return data, {}
    with data:
        name = next((n for n in ("features", "mel") if n in data.files), None)
        if name is None:
            raise VocoderError(f"{path}: .npz must hold an array named 'features' or 'mel' "
                               f"(has {data.files})")
        extras = {}
        if "speaker" in data.files:
            extras["speaker"] = int(data["speaker"])
        if "gc" in data.files:
            extras["gc"] = data["gc"]
        if "mel_config" in data.files:
            import json

            try:
                extras["mel_config"] = json.loads(str(data["mel_config"]))
            except ValueError as e:
                raise VocoderError(f"{path}: 'mel_config' is not JSON ({e})") from None
        return data[name], extras
