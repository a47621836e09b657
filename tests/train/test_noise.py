"""Injected input noise: what it does to a batch, and that it reaches training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train.synth import tiny_model_fields, write_dataset
from vocoder.errors import VocoderError
from vocoder.train import Preset, TrainConfig, train
from vocoder.train.data import Group
from vocoder.train.noise import noisy_inputs, with_input_noise
from vocoder.train.trainer import list_checkpoints, load_checkpoint


def _group(rng: np.random.Generator, b: int = 3, t: int = 4000) -> Group:
    x = rng.integers(0, 256, size=(b, t)).astype(np.int64)
    return Group(x=x, target=np.roll(x, -1, axis=1), features=np.zeros((b, 10, 2), np.float32),
                 speaker=np.zeros(b, np.int64), frame_offset=0)


def test_noise_has_the_asked_spread_and_stays_in_range():
    x = np.full((4, 50_000), 128, np.int64)
    y = noisy_inputs(x, 2.0, 256, np.random.default_rng(0))
    assert y.dtype == np.int64 and y.shape == x.shape
    d = (y - x).astype(float)
    assert abs(d.mean()) < 0.02
    # rounding N(0, 2) to an integer: variance 4 + 1/12
    assert d.std() == pytest.approx(np.sqrt(4 + 1 / 12), rel=0.02)
    # P(|N(0, 2)| > 0.5): the share of inputs that move to another class
    assert (d != 0).mean() == pytest.approx(0.8026, abs=0.01)
    edges = noisy_inputs(np.array([[0, 255] * 1000]), 3.0, 256, np.random.default_rng(1))
    assert edges.min() == 0 and edges.max() == 255


def test_targets_stay_clean_and_the_noise_repeats_by_step():
    g = _group(np.random.default_rng(0))
    a = with_input_noise([g], 1.5, 256, seed=0, rank=0, step=7)[0]
    b = with_input_noise([g], 1.5, 256, seed=0, rank=0, step=7)[0]
    c = with_input_noise([g], 1.5, 256, seed=0, rank=0, step=8)[0]
    d = with_input_noise([g], 1.5, 256, seed=0, rank=1, step=7)[0]
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, c.x)
    assert not np.array_equal(a.x, d.x)
    assert not np.array_equal(a.x, g.x)
    assert a.target is g.target and a.features is g.features
    assert with_input_noise([g], 0.0, 256, seed=0, rank=0, step=7)[0] is g


def test_config_checks_and_keeps_input_noise():
    with pytest.raises(VocoderError, match="input_noise must be >= 0"):
        TrainConfig(input_noise=-1.0)
    with pytest.raises(VocoderError, match="input_noise must be a number"):
        TrainConfig(input_noise="2")
    cfg = TrainConfig(input_noise=2.0)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    # a run written before the field existed reads as clean input
    old = cfg.to_dict()
    del old["input_noise"]
    assert TrainConfig.from_dict(old).input_noise == 0.0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "d", n_train=4, n_test=2,
                         frames=40)


def _weights(run):
    return load_checkpoint(list_checkpoints(run)[-1][1])["model"]


def test_noise_reaches_the_training_steps(data, tmp_path):
    def run(name, noise):
        preset = Preset(tiny_model_fields(), TrainConfig(
            batch_size=4, crop_frames=8, lr=3e-3, warmup_steps=0, steps=3, log_every=3,
            val_every=1000, checkpoint_every=3, input_noise=noise))
        train(data, tmp_path / name, preset, export=False, progress=False, device="cpu")
        return _weights(tmp_path / name)

    clean, again, noisy = run("clean", 0.0), run("again", 0.0), run("noisy", 2.0)
    assert all(torch.equal(clean[k], again[k]) for k in clean)
    assert not all(torch.equal(clean[k], noisy[k]) for k in clean)
