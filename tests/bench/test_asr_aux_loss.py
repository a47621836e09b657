"""bench.asr_aux_loss: both runs scored on the test split, with the trivial baselines."""

from __future__ import annotations

import json

import pytest
import torch

from bench import asr_aux_loss
from tests.asr.synth import tiny_model_fields, write_dataset
from vocoder.asr.config import ASRPreset, ASRTrainConfig
from vocoder.asr.train import train_asr


def test_main_writes_both_runs_and_the_baselines(tmp_path):
    data = write_dataset(tmp_path / "d", n_train=4, n_test=2)
    preset = ASRPreset(tiny_model_fields(), ASRTrainConfig(
        batch_size=2, crop_frames=4, steps=3, warmup_steps=1, val_utterances=0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, weight in (("aux", 1.0), ("plain", 0.0)):
            train_asr(data, tmp_path / name, preset, aux_weight=weight, progress=False,
                      device="cpu")
        out = tmp_path / "r.json"
        assert asr_aux_loss.main(["--data", str(data), "--run", f"aux={tmp_path / 'aux'}",
                                  "--run", f"plain={tmp_path / 'plain'}",
                                  "--command", "echo hi", "--penalties", "0,3",
                                  "--tune-utterances", "2", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    res = json.loads(out.read_text())
    assert res["commands"] == ["echo hi"]
    assert res["results"]["aux"]["aux_weight"] == 1.0
    assert res["results"]["plain"]["aux_weight"] == 0.0
    assert res["results"]["plain"]["train_sample_bits_last"] is None
    assert res["results"]["aux"]["train_sample_bits_last"] > 0
    for r in res["results"].values():
        assert r["steps"] == 3 and 0 <= r["test_argmax"]["frame_accuracy"] <= 1
        assert set(r["train_per_by_penalty"]) == {"0", "3"}
        assert r["switch_penalty"] in (0, 3)
        assert r["train_per_by_penalty"][f"{r['switch_penalty']:g}"] == min(
            r["train_per_by_penalty"].values())
    silence = res["baselines"]["all silence"]
    assert silence["per"] == pytest.approx(1.0)  # every reference phone deleted
    assert len(res["baselines"]) == 2


def test_run_argument_needs_a_name(tmp_path):
    with pytest.raises(SystemExit):
        asr_aux_loss.main(["--data", str(tmp_path), "--run", str(tmp_path)])
