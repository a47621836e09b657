"""TrainConfig and preset files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vocoder.errors import VocoderError
from vocoder.train.config import TrainConfig, load_preset

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_defaults_round_trip():
    cfg = TrainConfig(lr=3e-4, ema_decay=0.999)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize("field,value", [
    ("batch_size", 0), ("lr", -1.0), ("schedule", "linear"), ("ema_decay", 1.0),
    ("num_workers", 2), ("amp", "fp8"), ("steps", 1.5), ("grad_clip", -1.0),
])
def test_bad_values_are_rejected(field, value):
    with pytest.raises(VocoderError, match=field if field != "steps" else "steps"):
        TrainConfig(**{field: value})


def test_unknown_key_is_named():
    with pytest.raises(VocoderError, match="bacth_size"):
        TrainConfig.from_dict({"bacth_size": 3})


@pytest.mark.parametrize("name", ["demo.json", "tiny.json"])
def test_shipped_presets_load(name):
    preset = load_preset(CONFIGS / name)
    cfg = preset.model_config(cond_channels=7, n_speakers=3)
    assert (cfg.cond_channels, cfg.n_speakers, cfg.sample_rate) == (7, 3, 16000)
    assert cfg.hop_length == 80


def test_demo_preset_is_20_layers_in_2_stacks_of_1_to_512():
    # the default architecture's depth, narrowed (R=32, S=64) to train quickly on 2 cores
    cfg = load_preset(CONFIGS / "demo.json").model_config(10, 4)
    assert (cfg.layers, cfg.stacks, cfg.max_dilation) == (20, 2, 512)
    assert (cfg.residual_channels, cfg.skip_channels, cfg.cond_channels) == (32, 64, 10)


def test_preset_disagreeing_with_the_data_fails(tmp_path):
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"model": {"cond_channels": 5}, "train": {}}))
    with pytest.raises(VocoderError, match="cond_channels=5 but the dataset has 7"):
        load_preset(p).model_config(7, 1)


@pytest.mark.parametrize("text,match", [
    ("{not json", "cannot read"), ('{"modle": {}}', "keys"),
    ('{"model": {"layers": 7, "stacks": 2}}', "multiple of stacks"),
    ('{"train": {"lr": "fast"}}', "lr must be a number"),
])
def test_bad_preset_files(tmp_path, text, match):
    p = tmp_path / "p.json"
    p.write_text(text)
    with pytest.raises(VocoderError, match=match):
        load_preset(p)
