"""Recognition with a trained bundle: audio -> frame logits -> phone segments, and the
scores of a dataset's test split (frame accuracy, phone error rate).

Long audio runs in chunks of ``chunk_frames`` frames, each with the frame and audio
context of :func:`vocoder.asr.data.window`, so chunked logits equal the whole pass's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.asr.bundle import ASRBundle, load_asr_bundle
from vocoder.asr.data import ASRUtterance, audio_classes, load_asr_data, window
from vocoder.asr.decode import best_path
from vocoder.asr.labels import SILENCE
from vocoder.asr.metrics import collapse, edit_counts, phone_sequence
from vocoder.errors import VocoderError

CHUNK_FRAMES = 1000


@dataclass(frozen=True)
class PhoneSegment:
    """A recognised phone from ``start`` to ``end`` seconds (silence is ``_``)."""

    phone: str
    start: float
    end: float


def frame_logits(model, classes: np.ndarray, chunk_frames: int = CHUNK_FRAMES):
    """Frame logits (Tf, P) of mu-law classes zero-padded to whole frames (Tf * F,)."""
    import torch

    cfg = model.cfg
    device = next(model.parameters()).device
    total = len(classes) // cfg.frame_hop
    out = []
    with torch.no_grad():
        for start in range(0, total, chunk_frames):
            w = window(classes, total, start, min(chunk_frames, total - start), cfg)
            logits, _ = model(torch.from_numpy(w.x)[None].to(device),
                              keep=w.n_window * cfg.frame_hop, samples=False)
            out.append(logits[0, w.lo: w.hi].cpu())
    return torch.cat(out)


def read_wav(path: str | Path, sample_rate: int) -> np.ndarray:
    """float32 (N,) mono audio at ``sample_rate``; a VocoderError for anything else."""
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"audio file not found: {path}")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except RuntimeError as e:  # soundfile.LibsndfileError is one
        raise VocoderError(f"{path}: cannot read as audio ({e})") from None
    if audio.shape[1] != 1:
        raise VocoderError(f"{path} has {audio.shape[1]} channels; mono expected")
    if rate != sample_rate:
        raise VocoderError(f"{path} is at {rate} Hz but the model reads {sample_rate} Hz "
                           f"audio; resample it first")
    return audio[:, 0]


def decode(model, classes: np.ndarray, switch_penalty: float = 0.0) -> np.ndarray:
    """int64 (Tf,) phone class of every frame (:func:`vocoder.asr.decode.best_path`)."""
    logits = frame_logits(model, classes)
    return best_path(logits.log_softmax(-1).numpy(), switch_penalty)


def recognize(bundle: ASRBundle | str | Path, audio: np.ndarray,
              switch_penalty: float = 0.0) -> list[PhoneSegment]:
    """Float audio in [-1, 1] (or int16) at the bundle's rate -> the frame-wise phones
    (argmax, or the best path with ``switch_penalty``) collapsed into segments, silence
    included; times in seconds, the last segment ending with the audio."""
    b = bundle if isinstance(bundle, ASRBundle) else load_asr_bundle(bundle)
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise VocoderError(f"audio must be one channel (N,), got shape {audio.shape}")
    if audio.size == 0:
        raise VocoderError("the audio is empty: nothing to recognise")
    if not np.all(np.isfinite(audio)):
        raise VocoderError("the audio contains NaN or Inf")
    cfg = b.config
    pred = decode(b.model, audio_classes(audio, cfg), switch_penalty)
    hop, rate = cfg.frame_hop, cfg.sample_rate
    return [PhoneSegment(s.phone, s.start * hop / rate, min(s.end * hop, audio.size) / rate)
            for s in collapse([b.phones[k] for k in pred])]


def recognize_file(bundle: str | Path, wav: str | Path,
                   switch_penalty: float = 0.0) -> list[PhoneSegment]:
    b = load_asr_bundle(bundle)
    return recognize(b, read_wav(wav, b.config.sample_rate), switch_penalty)


def score(model, phones: list[str], utterances: list[ASRUtterance],
          switch_penalty: float = 0.0, progress: bool = False) -> dict[str, Any]:
    """Frame accuracy (every frame, silence included) and pooled phone error rate
    (:mod:`vocoder.asr.metrics`) of ``model``'s decoded frames on labelled utterances,
    with per-utterance rows."""
    from tqdm.auto import tqdm

    rows, correct, frames, edits, ref_len = [], 0, 0, [0, 0, 0], 0
    for utt in tqdm(utterances, desc="evaluate-asr", unit="utt", disable=not progress):
        pred = decode(model, utt.classes, switch_penalty)
        ok = int((pred == utt.labels).sum())
        ref = phone_sequence(utt.phones, SILENCE)
        hyp = phone_sequence([phones[k] for k in pred], SILENCE)
        e = edit_counts(ref, hyp)
        rows.append({"id": utt.id, "frames": utt.n_frames,
                     "frame_accuracy": round(ok / utt.n_frames, 4),
                     "reference_phones": len(ref), "recognised_phones": len(hyp),
                     "edits": e.total, "per": round(e.total / len(ref), 4) if ref else None})
        correct, frames, ref_len = correct + ok, frames + utt.n_frames, ref_len + len(ref)
        edits = [edits[0] + e.substitutions, edits[1] + e.deletions, edits[2] + e.insertions]
    return {"switch_penalty": switch_penalty, "utterances": len(utterances), "frames": frames,
            "frame_accuracy": correct / frames if frames else float("nan"),
            "per": sum(edits) / ref_len if ref_len else float("nan"),
            "reference_phones": ref_len, "substitutions": edits[0], "deletions": edits[1],
            "insertions": edits[2], "per_utterance": rows}


def evaluate_asr(bundle: str | Path, data: str | Path, n: int | None = None,
                 switch_penalty: float = 0.0, progress: bool = True) -> dict[str, Any]:
    """:func:`score` of a bundle on a dataset's test split (its first ``n`` utterances;
    all by default)."""
    b = load_asr_bundle(bundle)
    ds = load_asr_data(data, b.config, phones=b.phones, splits=("test",), max_test=n)
    if not ds.test:
        raise VocoderError(f"{data}: the dataset has no utterance in the test split")
    return {"bundle": str(b.path), "data": str(ds.root), "split": "test",
            "frame_ms": 1000 * b.config.frame_hop / b.config.sample_rate,
            **score(b.model, b.phones, ds.test, switch_penalty, progress)}


def format_report(res: dict[str, Any]) -> str:
    n = res["reference_phones"] or 1
    return "\n".join([
        f"{res['utterances']} test utterances of {res['data']}, "
        f"{res['frames']:,} frames of {res['frame_ms']:g} ms"
        + (f", best path with switch penalty {res['switch_penalty']:g}"
           if res["switch_penalty"] else ", frame-wise argmax"),
        f"frame accuracy   {100 * res['frame_accuracy']:.1f} %",
        f"phone error rate {100 * res['per']:.1f} % over {res['reference_phones']:,} "
        f"reference phones (substitutions {100 * res['substitutions'] / n:.1f} %, "
        f"deletions {100 * res['deletions'] / n:.1f} %, insertions "
        f"{100 * res['insertions'] / n:.1f} %)",
    ])
