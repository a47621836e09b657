"""Tiny synthetic datasets without frame features, tagged or not: noise whose level is
named by a tag ("wide": loud, "narrow": quiet), optionally with a tone ("tone"), so that
a tiny WaveNet has something to learn from the tags alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.conftest import make_config

TAGS = ["wide", "narrow", "tone"]
GROUPS = [["wide", "narrow"]]


def tiny_fields(**overrides) -> dict:
    """WaveNetConfig fields of the tests' tiny model (hop 6) without the data's fields."""
    cfg = make_config(**overrides).to_dict()
    for name in ("cond_channels", "n_speakers", "gc_channels"):
        del cfg[name]
    return cfg


def clip_tags(i: int) -> list[str]:
    """Clip i's tags: wide/narrow alternating, a tone on every third."""
    return ["wide" if i % 2 == 0 else "narrow"] + (["tone"] if i % 3 == 0 else [])


def clip_audio(tags: list[str], n: int, rng: np.random.Generator,
               sample_rate: int = 16000) -> np.ndarray:
    if "wide" in tags:  # loud samples of either sign: mu-law classes far from the middle
        audio = rng.choice([-1.0, 1.0], n) * rng.uniform(0.3, 0.6, n)
    else:
        audio = rng.uniform(-0.02, 0.02, n)
    if "tone" in tags:
        audio += 0.1 * np.sin(2 * np.pi * 500 * np.arange(n) / sample_rate)
    return audio


def write_tagged_dataset(root: Path, n_train: int = 6, n_test: int = 2, samples: int = 600,
                         hop: int = 6, sample_rate: int = 16000, tagged: bool = True,
                         seed: int = 0, groups: bool = True) -> Path:
    """A dataset directory without features or speakers: ``samples`` per clip (need not
    be a multiple of ``hop``), with the tags of :func:`clip_tags` when ``tagged``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_train + n_test):
        uid = f"clip{i:03d}"
        tags = clip_tags(i)
        sf.write(root / "wavs" / f"{uid}.wav", clip_audio(tags, samples, rng, sample_rate),
                 sample_rate, subtype="PCM_16")
        row = {"id": uid, "wav": f"wavs/{uid}.wav",
               "split": "train" if i < n_train else "test"}
        if tagged:
            row["tags"] = tags
        rows.append(row)
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"format": "vocoder-corpus", "version": 1, "sample_rate": sample_rate,
            "hop_length": hop, "feature_names": [], "binary": [], "speakers": []}
    if tagged:
        info["tags"] = TAGS
        if groups:
            info["tag_groups"] = GROUPS
    (root / "corpus.json").write_text(json.dumps(info))
    return root
