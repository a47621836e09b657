"""bench.train: the old and new forward agree, and the JSON records what was measured."""

from __future__ import annotations

import json

import torch

from bench import train as bench_train
from tests.train.synth import tiny_model_fields, write_preset


def test_legacy_forward_equals_the_model(tmp_path):
    from vocoder.model import WaveNet
    from vocoder.train import load_preset

    preset = load_preset(write_preset(tmp_path / "p.json", batch_size=2, crop_frames=5))
    torch.manual_seed(0)
    model = WaveNet(preset.model_config(7, 3))
    batch = bench_train.make_batch(model, 2, 5)
    x, _, feats, spk, k, keep = batch
    with torch.no_grad():
        old = bench_train.legacy_forward(model, x, feats, spk, k)[..., -keep:]
        new = model(x, feats, spk, None, k, keep=keep)
    torch.testing.assert_close(new, old, rtol=0, atol=1e-5)


def test_main_writes_json(tmp_path):
    preset = write_preset(tmp_path / "p.json", tiny_model_fields(), batch_size=2,
                          crop_frames=4)
    assert bench_train.main(["--config", str(preset), "--cond-channels", "5", "--steps", "1",
                             "--rounds", "1", "--threads", "1", "--out",
                             str(tmp_path / "out")]) == 0
    (path,) = (tmp_path / "out").glob("train-*.json")
    doc = json.loads(path.read_text())
    assert doc["loss_diff_before_after"] < 1e-4
    variants = {r["variant"]: r for r in doc["results"]}
    assert set(variants) == {"before", "after", "after+bf16"}
    assert variants["before"]["speedup_vs_before"] == 1.0
    assert all(r["samples_per_s"] > 0 and r["threads"] == 1 for r in doc["results"])
    assert "load_avg_1m_before" in variants["after"] and doc["machine"]["torch"]
