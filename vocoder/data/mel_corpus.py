"""Mel datasets: any manifest of wavs -> log-mel frames in the vocoder dataset format.

The format is :mod:`vocoder.data.corpus`'s, with one more key in corpus.json, ``"mel"``:
the :class:`~vocoder.features.mel.MelConfig` of the analysis. ``sample_rate`` and
``hop_length`` are the mel's, ``feature_names`` are ``mel_0 .. mel_{n-1}`` (then
``log_f0`` and ``vuv`` when the dataset carries F0). Training reads it unchanged and puts
the mel config into the bundle's feature spec, so synthesis knows what the model reads.

Each wav (mono, all at one rate) is resampled to the mel's rate with soxr when it is not
there already, rounded to 16 bits as the dataset stores it, zero-padded at the end to
T = ceil(N / hop) frames and analysed (:func:`vocoder.features.analysis.frame_features`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from vocoder.data.corpus import (
    FORMAT,
    VERSION,
    Dataset,
    _parse_entries,
    _read_rows,
    _write_dataset_files,
    _write_utterance,
    load_manifest,
    read_manifest,
)
from vocoder.errors import VocoderError
from vocoder.features.mel import MelConfig


def dataset_mel(info: dict[str, Any], where: Path | str = "corpus.json") -> MelConfig | None:
    """corpus.json's ``"mel"`` as a MelConfig (None when absent), checked against the
    dataset's rate, hop and feature names."""
    from vocoder.features.analysis import reads_f0

    if info.get("mel") is None:
        return None
    try:
        mel = MelConfig.from_dict(info["mel"])
        if (mel.sample_rate, mel.hop_length) != (int(info["sample_rate"]),
                                                 int(info["hop_length"])):
            raise VocoderError(f"the mel analysis is at {mel.sample_rate} Hz, hop "
                               f"{mel.hop_length}; the dataset at {info['sample_rate']} Hz, "
                               f"hop {info['hop_length']}")
        reads_f0(info["feature_names"], mel)
    except VocoderError as e:
        raise VocoderError(f"{where}: {e}") from None
    return mel


def _manifest_path(manifest: str | Path) -> Path:
    """A manifest file, or a dataset directory's manifest.jsonl."""
    path = Path(manifest)
    if path.is_dir():
        if not (path / "manifest.jsonl").is_file():
            raise VocoderError(f"{path} is a directory without a manifest.jsonl; give a "
                               f"manifest file or a dataset directory")
        return path / "manifest.jsonl"
    return path


def _speaker_names(manifest: Path, names: list[str], n_speakers: int) -> list[str]:
    """Names of the speaker ids: the manifest's own, a dataset's corpus.json beside it,
    or the ids as text."""
    if names:
        return names
    try:
        known = json.loads((manifest.parent / "corpus.json").read_text())["speakers"]
        if isinstance(known, list) and len(known) >= n_speakers:
            return [str(s) for s in known]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return [str(k) for k in range(n_speakers)]


def build_mel_dataset(manifest: str | Path, out: str | Path, mel: MelConfig, *,
                      f0: bool = False, f0_method: str = "dio", keep_speakers: bool = False,
                      progress: bool = True) -> Dataset:
    """Analyse every wav of ``manifest`` with ``mel`` into a dataset in ``out``.

    Args:
        manifest: a JSONL or CSV manifest (``id``, ``wav``; optional ``speaker``,
            ``split``, ``text``; feature and label columns are ignored), or a dataset
            directory such as the built-in corpus (its manifest.jsonl).
        out: the dataset directory to write.
        mel: the analysis (:func:`vocoder.features.mel.preset`).
        f0: also store log-F0 and voicing (pyworld), for a model with the F0 excitation.
        keep_speakers: keep the manifest's speaker ids, so the model learns a speaker
            embedding; by default the dataset has no speakers (a speaker-independent
            vocoder: the mels carry the voice).
        progress: show a tqdm bar.

    Returns:
        The written dataset, as ``load_manifest(out)`` reads it.
    """
    from vocoder.features import analysis
    from vocoder.features.frontend import resample

    path = _manifest_path(manifest)
    if not path.is_file():
        raise VocoderError(f"manifest not found: {path}")
    entries = read_manifest(path, check_values=False)
    _, names = _parse_entries(path, _read_rows(path))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, source_rate = [], None
    for entry in tqdm(entries, desc="mel features", unit="utt", disable=not progress):
        audio, rate = sf.read(str(entry.wav), dtype="int16", always_2d=False)
        source_rate = rate
        if audio.size == 0:
            raise VocoderError(f"utterance {entry.id!r}: {entry.wav} is empty")
        audio = resample(audio, rate, mel.sample_rate)
        feats = analysis.frame_features(audio, mel, f0=f0, f0_method=f0_method)
        if not np.all(np.isfinite(feats)):
            raise VocoderError(f"utterance {entry.id!r}: computed features contain NaN/Inf")
        audio = np.pad(audio, (0, feats.shape[0] * mel.hop_length - audio.size))
        wav_rel, feat_rel = _write_utterance(out, entry.id, audio, feats, mel.sample_rate)
        rows.append({"id": entry.id, "wav": wav_rel, "features": feat_rel,
                     "speaker": entry.speaker if keep_speakers else 0,
                     "split": entry.split, "text": entry.text})
    n_speakers = max(e.speaker for e in entries) + 1
    info = {
        "format": FORMAT, "version": VERSION, "sample_rate": mel.sample_rate,
        "hop_length": mel.hop_length, "feature_names": analysis.feature_names(mel, f0),
        "binary": analysis.binary_mask(mel, f0),
        "speakers": _speaker_names(path, names, n_speakers) if keep_speakers else [],
        "mel": mel.to_dict(),
        "source": {"generator": "mel-analysis", "manifest": str(path.resolve()),
                   "mel_preset": mel.name,
                   "resampled_from": source_rate if source_rate != mel.sample_rate else None,
                   "resampler": "soxr HQ",
                   "framing": "zero-pad at the end to ceil(N / hop) frames; frame i "
                   "conditions samples [i*hop, (i+1)*hop)",
                   "f0": {"method": f0_method} if f0 else None},
    }
    _write_dataset_files(out, info, rows)
    return load_manifest(out)
