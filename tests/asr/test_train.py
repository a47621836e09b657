"""Training the speech-recognition WaveNet: real torch steps on tiny configs."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from tests.asr.synth import make_asr_config, tiny_model_fields, write_dataset
from vocoder.asr.bundle import load_asr_bundle
from vocoder.asr.config import ASRPreset, ASRTrainConfig
from vocoder.asr.data import CropSampler, collate, load_asr_data
from vocoder.asr.model import ASRWaveNet
from vocoder.asr.train import accumulate_gradients, load_checkpoint, train_asr
from vocoder.errors import VocoderError
from vocoder.train.trainer import list_checkpoints


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("asr") / "d", n_train=6, n_test=2)


def _preset(**train) -> ASRPreset:
    base = dict(batch_size=4, crop_frames=6, lr=1e-2, warmup_steps=2, log_every=4,
                val_every=1000, checkpoint_every=1000, steps=8, val_utterances=2)
    return ASRPreset(tiny_model_fields(), ASRTrainConfig(**{**base, **train}))


def _log(run):
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("aux_weight", [1.0, 0.0])
def test_both_losses_fall_on_a_batch_it_overfits(data, aux_weight):
    cfg = make_asr_config()
    d = load_asr_data(data, cfg)
    cfg = cfg.replace(n_phones=len(d.phones))
    groups = collate(CropSampler(d.train, cfg, 6, 4, seed=0).next_batch())
    torch.manual_seed(0)
    model = ASRWaveNet(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    history = []
    for _ in range(60):
        opt.zero_grad()
        history.append(accumulate_gradients(model, groups, aux_weight, torch.device("cpu")))
        opt.step()
    first, last = history[0], history[-1]
    assert last["frame_loss"] < 0.5 * first["frame_loss"], (first, last)
    assert last["correct"] > first["correct"]
    if aux_weight:
        assert last["sample_loss"] < first["sample_loss"] - 0.5, (first, last)
    else:
        assert np.isnan(last["sample_loss"])
        assert model.wavenet.head2.weight.grad is None  # the head is skipped


def test_run_writes_log_checkpoint_and_bundle(data, tmp_path):
    res = train_asr(data, tmp_path / "run", _preset(steps=8, val_every=8), progress=False,
                    device="cpu")
    rows = _log(tmp_path / "run")
    assert [int(r["step"]) for r in rows] == [4, 8]
    assert all(float(r["frame_loss"]) > 0 and float(r["sample_bits"]) > 0 for r in rows)
    assert 0 <= float(rows[-1]["val_frame_acc"]) <= 1 and float(rows[-1]["val_per"]) >= 0
    assert {"frame_loss", "sample_bits", "val_frame_acc", "val_per"} <= set(res.metrics)
    b = load_asr_bundle(res.bundle)
    assert b.phones[0] == "_" and b.config.n_phones == len(b.phones)
    assert b.training["steps"] == 8 and b.training["train_config"]["aux_weight"] == 1.0
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [8]


def test_without_the_auxiliary_loss_the_sample_column_is_empty(data, tmp_path):
    res = train_asr(data, tmp_path / "run", _preset(steps=4), aux_weight=0.0,
                    progress=False, device="cpu")
    assert _log(tmp_path / "run")[-1]["sample_bits"] == ""
    assert "sample_bits" not in res.metrics
    assert load_asr_bundle(res.bundle).training["train_config"]["aux_weight"] == 0.0


def test_resume_is_bit_for_bit(data, tmp_path):
    preset = _preset(steps=10, checkpoint_every=5, ema_decay=0.9, log_every=5, val_every=5)
    train_asr(data, tmp_path / "straight", preset, progress=False, device="cpu")
    part = train_asr(data, tmp_path / "split", preset, stop_at=5, progress=False,
                     device="cpu")
    assert part.step == 5 and part.bundle is None
    with pytest.raises(VocoderError, match="aux_weight"):
        train_asr(data, tmp_path / "split", resume=True, aux_weight=0.0, progress=False)
    train_asr(data, tmp_path / "split", resume=True, progress=False, device="cpu")
    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1][1])
    b = load_checkpoint(list_checkpoints(tmp_path / "split")[-1][1])
    assert a["step"] == b["step"] == 10
    for key in ("model", "ema"):
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    strip = [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")}
             for r in _log(tmp_path / "straight")]
    assert strip == [{k: v for k, v in r.items() if k not in ("time_s", "samples_per_s")}
                     for r in _log(tmp_path / "split")]


def test_refuses_to_overwrite_or_resume_nothing(data, tmp_path):
    train_asr(data, tmp_path / "run", _preset(steps=2), progress=False, device="cpu")
    with pytest.raises(VocoderError, match="already holds checkpoints"):
        train_asr(data, tmp_path / "run", _preset(steps=2), progress=False, device="cpu")
    with pytest.raises(VocoderError, match="no checkpoint"):
        train_asr(data, tmp_path / "other", resume=True, progress=False, device="cpu")


def test_dataset_without_alignment_is_refused_before_anything_is_written(tmp_path):
    plain = write_dataset(tmp_path / "plain", alignment=False)
    with pytest.raises(VocoderError, match="no phone alignment"):
        train_asr(plain, tmp_path / "run", _preset(), progress=False, device="cpu")
    assert not (tmp_path / "run").exists()
