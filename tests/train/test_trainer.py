"""The training loop: learning, bit-exact resume, the final bundle, the CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from tests.train.synth import tiny_model_fields, write_dataset, write_preset
from vocoder.api import Vocoder
from vocoder.config import WaveNetConfig
from vocoder.errors import VocoderError
from vocoder.train import Preset, TrainConfig, train
from vocoder.train.trainer import list_checkpoints, load_checkpoint, lr_factor


def _preset(**train_fields) -> Preset:
    base = dict(batch_size=4, crop_frames=8, lr=3e-3, warmup_steps=3, log_every=5,
                val_every=1000, checkpoint_every=1000, steps=10)
    return Preset(tiny_model_fields(), TrainConfig(**{**base, **train_fields}))


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "d", n_train=4, n_test=2,
                         frames=40)


def _log(run):
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def test_loss_decreases(data, tmp_path):
    res = train(data, tmp_path / "run", _preset(steps=40, val_every=40), export=False,
                progress=False, device="cpu")
    rows = [r for r in _log(tmp_path / "run") if r["train_bits"]]
    first, last = float(rows[0]["train_bits"]), float(rows[-1]["train_bits"])
    assert first > 7.5  # ~8 bits: uniform over 256 classes
    assert last < first - 0.5, (first, last)
    assert np.isfinite(res.metrics["val_bits"]) and res.metrics["val_bits"] < 7.8
    assert res.samples_per_s > 0


@pytest.mark.parametrize("input_noise", [0.0, 2.0])
def test_resume_is_bit_for_bit(data, tmp_path, input_noise):
    preset = _preset(steps=12, checkpoint_every=6, ema_decay=0.9, weight_decay=0.01,
                     schedule="cosine", log_every=3, val_every=6, input_noise=input_noise)
    train(data, tmp_path / "straight", preset, export=False, progress=False, device="cpu")
    part = train(data, tmp_path / "split", preset, stop_at=6, export=False, progress=False,
                 device="cpu")
    assert part.step == 6 and part.bundle is None
    train(data, tmp_path / "split", None, resume=True, export=False, progress=False,
          device="cpu")
    a = load_checkpoint(list_checkpoints(tmp_path / "straight")[-1][1])
    b = load_checkpoint(list_checkpoints(tmp_path / "split")[-1][1])
    assert a["step"] == b["step"] == 12
    for key in ("model", "ema"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a["rng"][0]["sampler"] == b["rng"][0]["sampler"]
    # the log was continued, not duplicated
    assert [r["step"] for r in _log(tmp_path / "split")] == \
        [r["step"] for r in _log(tmp_path / "straight")]


def test_checkpoints_keep_last_k(data, tmp_path):
    train(data, tmp_path / "run", _preset(steps=8, checkpoint_every=2, keep_last=2),
          export=False, progress=False, device="cpu")
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [6, 8]
    assert not list((tmp_path / "run" / "checkpoints").glob(".*"))  # no temp files left


def test_refuses_to_overwrite_or_resume_nothing(data, tmp_path):
    with pytest.raises(VocoderError, match="no checkpoint"):
        train(data, tmp_path / "run", None, resume=True, progress=False, device="cpu")
    train(data, tmp_path / "run", _preset(steps=2), export=False, progress=False,
          device="cpu")
    with pytest.raises(VocoderError, match="--resume"):
        train(data, tmp_path / "run", _preset(steps=2), progress=False, device="cpu")


def test_model_that_does_not_fit_the_data(data, tmp_path):
    preset = Preset({**tiny_model_fields(), "upsample_scales": [4, 5]}, TrainConfig(steps=1))
    with pytest.raises(VocoderError, match="hop"):
        train(data, tmp_path / "run", preset, progress=False, device="cpu")


def test_bundle_loads_and_synthesises(data, tmp_path):
    res = train(data, tmp_path / "run", _preset(steps=3, ema_decay=0.5), export=False,
                progress=False, device="cpu")
    voc = Vocoder.load(res.bundle, backend="torch")
    assert voc.feature_spec.names[0] == "log_f0"
    assert voc.bundle.training["steps"] == 3 and voc.bundle.training["weights"] == "ema"
    assert "machine" in voc.bundle.training and "val_bits" in voc.bundle.training["metrics"]
    feats = np.load(data / "feats" / "utt004.npy")[:10]
    audio = voc.synthesize(feats, speaker=1, seed=0)
    assert audio.shape == (10 * voc.hop_length,) and np.all(np.isfinite(audio))


@pytest.mark.parametrize("schedule", ["cosine", "exponential", "constant"])
def test_lr_schedule(schedule):
    t = TrainConfig(lr=1.0, warmup_steps=10, steps=110, schedule=schedule, min_lr_ratio=0.1,
                    decay_rate=0.5, decay_steps=50)
    assert lr_factor(t, 0) == pytest.approx(0.1) and lr_factor(t, 9) == pytest.approx(1.0)
    want_end = {"cosine": 0.1, "exponential": 0.25, "constant": 1.0}[schedule]
    assert lr_factor(t, 110) == pytest.approx(want_end)


def test_cli_train_then_evaluate(data, tmp_path, capsys):
    from vocoder.cli import main

    preset = write_preset(tmp_path / "p.json", steps=4, batch_size=2, crop_frames=6,
                          warmup_steps=1, log_every=2, val_every=4, checkpoint_every=2)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--config", str(preset),
                 "-q", "--device", "cpu"]) == 0
    assert "trained 4 steps" in capsys.readouterr().out
    assert (run / "bundle" / "step.onnx").is_file()
    assert main(["train", "--data", str(data), "--out", str(run), "--resume", "--steps", "6",
                 "-q", "--device", "cpu", "--no-export"]) == 0
    assert "trained 6 steps" in capsys.readouterr().out
    assert not (run / "bundle" / "step.onnx").exists()  # stale graphs are not left behind
    assert main(["evaluate", str(run / "bundle"), "--data", str(data), "--n", "1",
                 "--backend", "torch", "--pitch-semitones", "0",
                 "--json", str(tmp_path / "e.json"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "bits/sample" in out and (tmp_path / "e.json").is_file()
    # Without --json nothing is written, least of all into the bundle (it may be tracked).
    before = sorted(p.name for p in (run / "bundle").iterdir())
    assert main(["evaluate", str(run / "bundle"), "--data", str(data), "--n", "1",
                 "--backend", "torch", "--pitch-semitones", "0", "--no-asr", "-q"]) == 0
    assert "bits/sample" in capsys.readouterr().out
    assert sorted(p.name for p in (run / "bundle").iterdir()) == before
    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r2"),
                 "-q"]) == 2
    assert "corpus.json missing" in capsys.readouterr().err
    assert not (tmp_path / "r2").exists()  # nothing written for a run that cannot start


def test_ema_ramps_up_then_averages():
    from vocoder.train.trainer import EMA

    m = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(0.0)
    ema = EMA(m, decay=0.9)
    with torch.no_grad():
        m.weight.fill_(1.0)
    ema.update(m, 0)  # decay min(0.9, 1/10): mostly the new weights already
    assert ema.state_dict()["weight"].item() == pytest.approx(0.9)
    for n in range(1, 200):
        ema.update(m, n)
    assert ema.state_dict()["weight"].item() == pytest.approx(1.0, abs=1e-6)
    assert m.weight.item() == 1.0  # the model itself is untouched


def test_cli_bad_steps_is_a_clear_error(data, tmp_path, capsys):
    from vocoder.cli import main

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--steps", "0",
                 "-q", "--device", "cpu"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err


def test_excitation_model_trains_and_its_bundle_runs(data, tmp_path):
    """The F0 columns and their normalisation come from the data; every backend gets the
    phase column from the runtime and matches the torch reference."""
    preset = Preset({**tiny_model_fields(), "excitation": 2}, TrainConfig(
        batch_size=4, crop_frames=8, lr=3e-3, warmup_steps=3, steps=4, val_every=4,
        checkpoint_every=2))
    res = train(data, tmp_path / "run", preset, progress=False, device="cpu")
    voc = Vocoder.load(res.bundle, backend="onnxruntime")
    cfg, spec = voc.config, voc.feature_spec
    assert (cfg.excitation, cfg.f0_feature, cfg.vuv_feature) == (2, 0, 1)
    assert (cfg.log_f0_mean, cfg.log_f0_std) == pytest.approx((spec.mean[0], spec.std[0]))
    assert voc.bundle.weights["cond_proj.weight"].shape[1] == cfg.cond_hidden + 4
    feats = np.load(data / "feats" / "utt004.npy")[:12]
    audio = voc.synthesize(feats, speaker=1, seed=0, fold=False)
    ref = Vocoder.load(res.bundle, backend="torch").synthesize(feats, speaker=1, seed=0)
    np.testing.assert_array_equal(audio, ref)


def test_data_for_model_appends_the_frame_phase(data):
    from vocoder.config import WaveNetConfig
    from vocoder.excitation import config_fields
    from vocoder.train.data import load_train_data

    d = load_train_data(data)
    cfg = WaveNetConfig(**{**tiny_model_fields(), "cond_channels": 3, "excitation": 1,
                           **config_fields(d.spec)})
    m = d.for_model(cfg)
    u, v = d.train[0], m.train[0]
    assert v.features.shape == (u.n_frames, 4)
    np.testing.assert_array_equal(v.features[:, :3], u.features)
    assert v.features[0, 3] == 0.0 and np.all(np.diff(v.features[:5, 3]) != 0)
    assert d.for_model(cfg.replace(excitation=0)) is d


def test_bundle_from_checkpoint(data, tmp_path):
    from vocoder.train.trainer import bundle_from_checkpoint

    train(data, tmp_path / "run", _preset(steps=4, checkpoint_every=2, ema_decay=0.5),
          stop_at=4, export=False, progress=False, device="cpu")
    path = bundle_from_checkpoint(tmp_path / "run", tmp_path / "b2", step=2)
    voc = Vocoder.load(path)
    assert voc.bundle.training["steps"] == 2 and voc.bundle.training["weights"] == "ema"
    ema = load_checkpoint(list_checkpoints(tmp_path / "run")[0][1])["ema"]
    assert torch.equal(torch.from_numpy(voc.bundle.weights["head2.bias"]), ema["head2.bias"])
    with pytest.raises(VocoderError, match="no checkpoint of step 3"):
        bundle_from_checkpoint(tmp_path / "run", tmp_path / "b3", step=3)


def test_bundle_from_checkpoint_records_the_corpus(data, tmp_path):
    from vocoder.train.trainer import bundle_from_checkpoint

    train(data, tmp_path / "run", _preset(steps=2, checkpoint_every=2), stop_at=2,
          export=False, progress=False, device="cpu")
    voc = Vocoder.load(bundle_from_checkpoint(tmp_path / "run", tmp_path / "b"))
    assert voc.bundle.training["corpus"]["speakers"] == ["spk0", "spk1"]


def test_context_stack_model_trains_and_its_bundle_runs(data, tmp_path):
    """A model with a context stack: a few real steps, the fields survive the checkpoint
    and the bundle, and the exported bundle generates the torch reference's samples."""
    fields = {**tiny_model_fields(), "context_pool": 12, "context_channels": 4,
              "context_layers": 2, "context_dilation_limit": 2}
    preset = Preset(fields, TrainConfig(batch_size=4, crop_frames=8, lr=3e-3,
                                        warmup_steps=2, steps=4, val_every=4,
                                        checkpoint_every=2))
    res = train(data, tmp_path / "run", preset, progress=False, device="cpu")
    assert np.isfinite(res.metrics["val_bits"])
    ckpt = load_checkpoint(list_checkpoints(tmp_path / "run")[-1][1])
    voc = Vocoder.load(res.bundle, backend="onnxruntime")
    cfg = voc.config
    assert (cfg.context_pool, cfg.context_channels, cfg.context_layers,
            cfg.context_dilation_limit) == (12, 4, 2, 2)
    assert any(k.startswith("context.") for k in ckpt["model"])
    assert WaveNetConfig.from_dict(ckpt["model_config"]) == cfg
    assert (res.bundle / "context_step.onnx").is_file()
    feats = np.load(data / "feats" / "utt004.npy")[:12]
    audio = voc.synthesize(feats, speaker=1, seed=0)
    ref = Vocoder.load(res.bundle, backend="torch").synthesize(feats, speaker=1, seed=0)
    np.testing.assert_array_equal(audio, ref)
