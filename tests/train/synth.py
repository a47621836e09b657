"""Tiny synthetic datasets in the vocoder-corpus format: sine tones whose pitch is a
feature, so a tiny WaveNet has something learnable to fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import make_config

NAMES = ["log_f0", "vuv", "ramp"]
BINARY = [False, True, False]


def tiny_model_fields(**overrides) -> dict:
    """WaveNetConfig fields of the tests' tiny model (hop 6), without the data's fields."""
    cfg = make_config(**overrides).to_dict()
    del cfg["cond_channels"], cfg["n_speakers"]
    return cfg


def write_dataset(root: Path, n_train: int = 4, n_test: int = 2, frames: int = 30,
                  hop: int = 6, sample_rate: int = 16000, speakers: int = 2,
                  seed: int = 0, noise: float = 0.0) -> Path:
    """Write ``root`` with utterances of ``frames`` frames: a tone whose F0 glides between
    two pitches (log_f0 and vuv are features; the last tenth of each is silent), plus
    white noise of std ``noise``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    (root / "feats").mkdir(exist_ok=True)
    rows = []
    for i in range(n_train + n_test):
        uid = f"utt{i:03d}"
        f_start, f_end = rng.uniform(200, 600, size=2)
        f0 = np.geomspace(f_start, f_end, frames)
        vuv = np.ones(frames)
        vuv[-max(1, frames // 10):] = 0
        f0_samples = np.repeat(f0, hop)
        phase = 2 * np.pi * np.cumsum(f0_samples) / sample_rate
        audio = 0.5 * np.sin(phase) * np.repeat(vuv, hop)
        audio = audio + noise * rng.standard_normal(audio.size) if noise else audio
        feats = np.stack([np.log(f0), vuv, np.linspace(0, 1, frames)], 1).astype(np.float32)
        sf.write(root / "wavs" / f"{uid}.wav", audio, sample_rate, subtype="PCM_16")
        np.save(root / "feats" / f"{uid}.npy", feats)
        rows.append({"id": uid, "wav": f"wavs/{uid}.wav", "features": f"feats/{uid}.npy",
                     "speaker": i % speakers, "split": "train" if i < n_train else "test",
                     "text": f"tone {i}"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"format": "vocoder-corpus", "version": 1, "sample_rate": sample_rate,
            "hop_length": hop, "feature_names": NAMES, "binary": BINARY,
            "speakers": [f"spk{k}" for k in range(speakers)]}
    (root / "corpus.json").write_text(json.dumps(info))
    return root


def write_preset(path: Path, model: dict | None = None, **train) -> Path:
    """A preset JSON with the tiny model and the given TrainConfig fields."""
    doc = {"model": model if model is not None else tiny_model_fields(), "train": train}
    path.write_text(json.dumps(doc))
    return path


def train_tiny_run(root: Path, steps: int = 3) -> tuple[Path, Path]:
    """(dataset, bundle): ``configs/tiny.json`` trained for ``steps`` steps on one thread
    on 80-sample-hop tones (3 train and 2 test utterances of 30 frames)."""
    import torch

    from vocoder.train import load_preset, train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = write_dataset(root / "data", n_train=3, n_test=2, frames=30, hop=80)
        preset = load_preset(Path(__file__).resolve().parents[2] / "configs" / "tiny.json")
        preset = type(preset)(preset.model, preset.train.replace(
            steps=steps, val_every=steps, checkpoint_every=steps))
        res = train(data, root / "run", preset, progress=False, device="cpu")
    finally:
        torch.set_num_threads(before)
    return data, res.bundle
