"""ASRConfig and ASRTrainConfig: values, JSON round trips, presets, the geometry."""

from __future__ import annotations

import json

import pytest

from tests.asr.synth import make_asr_config, tiny_model_fields, write_preset
from vocoder.asr.config import (
    ASRConfig,
    ASRTrainConfig,
    frame_context,
    load_asr_preset,
    n_frames,
    stack_receptive_field,
)
from vocoder.errors import VocoderError


def test_round_trip_through_json():
    cfg = make_asr_config(frame_kernel=5, n_phones=7)
    assert ASRConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    tcfg = ASRTrainConfig(aux_weight=0.25, steps=7)
    assert ASRTrainConfig.from_dict(json.loads(json.dumps(tcfg.to_dict()))) == tcfg


@pytest.mark.parametrize("field, value, message", [
    ("frame_kernel", 4, "frame_kernel must be odd"),
    ("frame_hop", 0, "frame_hop"),
    ("n_phones", 1, "n_phones"),
    ("gate_channels", 7, "invalid ASRConfig: gate_channels"),
    ("frame_layers", 1.5, "frame_layers must be an int"),
])
def test_invalid_model_fields_are_clear_errors(field, value, message):
    with pytest.raises(VocoderError, match=message):
        ASRConfig.from_dict({**make_asr_config().to_dict(), field: value})


@pytest.mark.parametrize("value", [-1.0, float("nan"), "1", True])
def test_invalid_aux_weight(value):
    with pytest.raises(VocoderError, match="aux_weight"):
        ASRTrainConfig(aux_weight=value)


def test_unknown_keys_are_named():
    with pytest.raises(VocoderError, match="frame_size"):
        ASRConfig.from_dict({"frame_size": 3})


def test_geometry():
    cfg = make_asr_config(layers=4, dilation_limit=8, frame_layers=2, frame_kernel=5)
    assert stack_receptive_field(cfg) == 1 + 1 + 2 + 4 + 8
    assert frame_context(cfg) == 4
    assert n_frames(1, cfg) == 1 and n_frames(16, cfg) == 1 and n_frames(17, cfg) == 2
    assert cfg.stack_config().cond_channels == 0


def test_preset_fills_n_phones_and_checks_a_given_one(tmp_path):
    preset = load_asr_preset(write_preset(tmp_path / "p.json", steps=5, aux_weight=0))
    assert preset.train.steps == 5 and preset.train.aux_weight == 0
    assert preset.model_config(9).n_phones == 9
    model = {**tiny_model_fields(), "n_phones": 3}
    fixed = load_asr_preset(write_preset(tmp_path / "q.json", model))
    with pytest.raises(VocoderError, match="n_phones=3"):
        fixed.model_config(4)


def test_preset_typos_fail_when_read(tmp_path):
    path = write_preset(tmp_path / "p.json", model={"layers": 3, "frame_kernal": 3})
    with pytest.raises(VocoderError, match="frame_kernal"):
        load_asr_preset(path)
    path.write_text(json.dumps({"model": {}, "train": {"aux_wieght": 1}}))
    with pytest.raises(VocoderError, match="aux_wieght"):
        load_asr_preset(path)


def test_shipped_preset_loads():
    preset = load_asr_preset("configs/asr-small.json")
    cfg = preset.model_config(62)
    assert cfg.frame_hop * 100 == cfg.sample_rate  # 10 ms frames
