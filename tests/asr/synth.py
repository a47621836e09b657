"""Tiny aligned datasets in the vocoder-corpus format, and the tests' tiny ASR config.

Each utterance is a random sequence of "phones" with distinct sounds (silence, a 400 Hz
tone, white noise, a 150 Hz tone), 2-6 feature frames each; the ``cur=<phone>`` columns
hold the alignment, as the built-in eSpeak corpus stores it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from vocoder.asr.config import ASRConfig

PHONES = ["_", "a", "s", "m"]
HOP = 8
RATE = 16000

TINY = dict(residual_channels=4, gate_channels=8, skip_channels=8, layers=4, stacks=1,
            dilation_limit=8, frame_hop=16, frame_channels=8, frame_layers=2, frame_kernel=3,
            n_phones=len(PHONES))


def make_asr_config(**overrides) -> ASRConfig:
    """The tests' tiny ASR config (receptive field 16 samples, 16-sample frames)."""
    return ASRConfig(**{**TINY, **overrides})


def tiny_model_fields(**overrides) -> dict:
    """ASRConfig fields of the tiny model without the data-given n_phones."""
    fields = make_asr_config(**overrides).to_dict()
    del fields["n_phones"]
    return fields


def _sound(phone: str, n: int, rng: np.random.Generator, t0: int) -> np.ndarray:
    t = (t0 + np.arange(n)) / RATE
    if phone == "a":
        return 0.5 * np.sin(2 * np.pi * 400 * t)
    if phone == "s":
        return 0.3 * rng.standard_normal(n)
    if phone == "m":
        return 0.4 * np.sin(2 * np.pi * 150 * t)
    return 0.001 * rng.standard_normal(n)


def write_dataset(root: Path, n_train: int = 6, n_test: int = 2, segments: int = 8,
                  seed: int = 0, sample_rate: int = RATE, alignment: bool = True) -> Path:
    """Write ``root``: utterances of ``segments`` phones each, starting and ending in
    silence. Without ``alignment`` the features have no ``cur=`` columns."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    (root / "feats").mkdir(exist_ok=True)
    names = [f"cur={p}" for p in PHONES] + ["log_f0", "vuv"] if alignment \
        else ["user_0", "log_f0", "vuv"]
    rows = []
    for i in range(n_train + n_test):
        uid = f"utt{i:03d}"
        seq = ["_"] + list(rng.choice(PHONES[1:], size=segments - 2)) + ["_"]
        frames = [int(rng.integers(2, 7)) for _ in seq]
        audio, onehots, t0 = [], [], 0
        for p, f in zip(seq, frames):
            audio.append(_sound(p, f * HOP, rng, t0))
            t0 += f * HOP
            onehots += [np.eye(len(PHONES))[PHONES.index(p)]] * f
        audio = np.concatenate(audio)
        cur = np.array(onehots, np.float32)
        extra = np.zeros((len(cur), 2), np.float32)
        feats = np.concatenate([cur, extra], 1) if alignment \
            else np.concatenate([cur[:, :1], extra], 1)
        sf.write(root / "wavs" / f"{uid}.wav", audio, sample_rate, subtype="PCM_16")
        np.save(root / "feats" / f"{uid}.npy", feats.astype(np.float32))
        rows.append({"id": uid, "wav": f"wavs/{uid}.wav", "features": f"feats/{uid}.npy",
                     "speaker": 0, "split": "train" if i < n_train else "test",
                     "text": " ".join(seq)})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"format": "vocoder-corpus", "version": 1, "sample_rate": sample_rate,
            "hop_length": HOP, "feature_names": names,
            "binary": [True] * (len(names) - 2) + [False, True], "speakers": ["spk0"]}
    (root / "corpus.json").write_text(json.dumps(info))
    return root


def write_preset(path: Path, model: dict | None = None, **train) -> Path:
    doc = {"model": model if model is not None else tiny_model_fields(), "train": train}
    path.write_text(json.dumps(doc))
    return path
