"""``train(init_from=BUNDLE)``: a new run that starts from a trained bundle's weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.train.synth import tiny_model_fields, write_dataset
from vocoder.bundle import load_bundle
from vocoder.errors import VocoderError
from vocoder.excitation import config_fields, with_phase
from vocoder.model import WaveNet
from vocoder.train import Preset, TrainConfig, train
from vocoder.train.data import load_train_data
from vocoder.train.init_from import (
    CONDITIONING,
    check_same_inputs,
    stack_of,
    start_weights,
    transfer_weights,
)
from vocoder.train.trainer import list_checkpoints, load_checkpoint


def _train_cfg(**fields) -> TrainConfig:
    base = dict(batch_size=4, crop_frames=8, lr=3e-3, warmup_steps=2, log_every=2,
                val_every=1000, checkpoint_every=1000, steps=3, ema_decay=0.0)
    return TrainConfig(**{**base, **fields})


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("data") / "d", n_train=4, n_test=2,
                         frames=40)


@pytest.fixture(scope="module")
def source(data, tmp_path_factory):
    """A bundle trained for a few steps: the model the tests start from."""
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("src") / "run"
    res = train(data, run, Preset(tiny_model_fields(), _train_cfg(steps=6)),
                export=False, progress=False, device="cpu")
    return res.bundle


def _logits(model, data, cfg):
    d = load_train_data(data)
    u = d.test[0]
    feats = torch.from_numpy(with_phase(u.features, cfg))[None]
    x = torch.from_numpy(np.asarray(u.classes[:-1], np.int64))[None]
    with torch.no_grad():
        return model.eval()(x, feats, torch.tensor([u.speaker]))


def test_an_excitation_model_starts_computing_what_its_source_did(source, data):
    """The excitation's columns of cond_proj start at zero: the grown model's logits equal
    the source's exactly, and every other tensor is copied."""
    b = load_bundle(source)
    src_model = b.build_model()
    spec = load_train_data(data).spec
    cfg = b.config.replace(excitation=2, **config_fields(spec))
    grown = WaveNet(cfg)
    report = transfer_weights(grown, b.weights)
    assert report.widened == ["cond_proj.weight"] and not report.fresh
    assert len(report.copied) == len(b.weights) - 1 and not report.unused
    w = grown.state_dict()["cond_proj.weight"]
    assert torch.count_nonzero(w[:, cfg.cond_hidden:]) == 0
    np.testing.assert_array_equal(w[:, : cfg.cond_hidden].numpy(),
                                  b.weights["cond_proj.weight"])
    torch.testing.assert_close(_logits(grown, data, cfg), _logits(src_model, data, b.config),
                               rtol=0, atol=1e-5)


def _appended(data, root):
    """A copy of ``data`` whose frames carry one more feature, 'extra', after the rest."""
    import shutil

    shutil.copytree(data, root)
    rng = np.random.default_rng(1)
    for f in (root / "feats").glob("*.npy"):
        x = np.load(f)
        np.save(f, np.concatenate([x, rng.standard_normal((len(x), 1), np.float32)], 1))
    info = json.loads((root / "corpus.json").read_text())
    info["feature_names"].append("extra")
    info["binary"].append(False)
    (root / "corpus.json").write_text(json.dumps(info))
    return root


def test_a_dataset_that_appends_features_grows_the_conditioning_input(source, data,
                                                                      tmp_path):
    """cond_in takes the source's columns and zeros in the appended feature's: the grown
    model ignores the new feature until trained, and computes what the source did."""
    b = load_bundle(source)
    grown = WaveNet(b.config.replace(cond_channels=b.config.cond_channels + 1))
    report = transfer_weights(grown, start_weights(b, [*b.feature_spec.names, "extra"]))
    assert "cond_in.weight" in report.copied and not report.fresh and not report.widened
    w = grown.state_dict()["cond_in.weight"]
    assert torch.count_nonzero(w[:, -1]) == 0
    u = load_train_data(data).test[0]
    x = torch.from_numpy(np.asarray(u.classes[:-1], np.int64))[None]
    feats = torch.from_numpy(u.features)[None]
    extra = torch.cat([feats, torch.randn(1, feats.shape[1], 1)], dim=-1)
    spk = torch.tensor([u.speaker])
    with torch.no_grad():
        torch.testing.assert_close(grown.eval()(x, extra, spk),
                                   b.build_model().eval()(x, feats, spk), rtol=0, atol=1e-5)
    # end to end: the run accepts the appended dataset and its bundle reads it
    more = _appended(data, tmp_path / "more")
    res = train(more, tmp_path / "ft", None, init_from=source, steps=1, export=False,
                progress=False, device="cpu")
    assert load_bundle(res.bundle).feature_spec.names[-1] == "extra"
    assert load_bundle(res.bundle).config.cond_channels == b.config.cond_channels + 1


def test_appending_features_needs_a_conditioning_network(data, tmp_path):
    flat = train(data, tmp_path / "flat", Preset(tiny_model_fields(cond_hidden=0),
                                                 _train_cfg(steps=1)),
                 export=False, progress=False, device="cpu").bundle
    more = _appended(data, tmp_path / "more")
    with pytest.raises(VocoderError, match=r"appends features \(extra\).*cond_hidden 0"):
        train(more, tmp_path / "r", None, init_from=flat, steps=1, export=False,
              progress=False, device="cpu")
    # and the other way round, a dataset with fewer features, is no prefix
    with pytest.raises(VocoderError, match="other features .*4 vs 3 features"):
        check_same_inputs(load_bundle(train(more, tmp_path / "m", Preset(
            tiny_model_fields(), _train_cfg(steps=1)), export=False, progress=False,
            device="cpu").bundle), load_train_data(data).spec, [], data)


def test_mismatched_tensors_stay_fresh_and_no_fit_is_an_error(source):
    b = load_bundle(source)
    wider_speakers = WaveNet(b.config.replace(n_speakers=b.config.n_speakers + 1))
    report = transfer_weights(wider_speakers, b.weights)
    assert report.fresh == ["speaker_embed.weight"], report.fresh
    assert "speaker_embed.weight" in report.summary()
    other = WaveNet(b.config.replace(residual_channels=4, gate_channels=6, skip_channels=10,
                                     cond_hidden=5, quantization_channels=64,
                                     n_speakers=1))
    with pytest.raises(VocoderError, match="no tensor of the source bundle fits"):
        transfer_weights(other, b.weights)


def test_a_fine_tuning_run_keeps_the_source_architecture_and_records_it(source, data,
                                                                          tmp_path):
    res = train(data, tmp_path / "ft", None, init_from=source, steps=2, export=False,
                progress=False, device="cpu")
    b, src = load_bundle(res.bundle), load_bundle(source)
    assert b.config == src.config
    assert b.training["steps"] == 2
    assert b.training["init_from"] == {"bundle": str(source),
                                       "weights_sha256": src.weights_sha256}
    run = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert run["init_from"]["weights_sha256"] == src.weights_sha256
    # it started from the source, not from scratch: 2 steps from a random start leave the
    # weights far from the source's, 2 fine-tuning steps at a small rate leave them close
    ft = train(data, tmp_path / "ft2", Preset(tiny_model_fields(), _train_cfg(
        lr=1e-5, steps=2)), init_from=source, export=False, progress=False, device="cpu")
    near = load_checkpoint(list_checkpoints(ft.run_dir)[-1][1])["model"]
    for name, w in src.weights.items():
        np.testing.assert_allclose(near[name].numpy(), w, atol=1e-4, err_msg=name)


def test_init_from_errors(source, data, tmp_path):
    with pytest.raises(VocoderError, match="--resume continues"):
        train(data, tmp_path / "r", None, init_from=source, resume=True, progress=False,
              device="cpu")
    other = write_dataset(tmp_path / "o", n_train=2, n_test=1, frames=20)
    info = json.loads((other / "corpus.json").read_text())
    info["feature_names"][2] = "energy"
    (other / "corpus.json").write_text(json.dumps(info))
    with pytest.raises(VocoderError, match="other features .*'ramp' vs 'energy'"):
        train(other, tmp_path / "r2", None, init_from=source, steps=1, export=False,
              progress=False, device="cpu")
    from tests.train.synth_tags import write_tagged_dataset

    plain = write_tagged_dataset(tmp_path / "plain", tagged=False)
    with pytest.raises(VocoderError, match="the bundle reads frame features but .* none"):
        train(plain, tmp_path / "r4", None, init_from=source, steps=1, export=False,
              progress=False, device="cpu")
    with pytest.raises(VocoderError, match="config.json"):
        train(data, tmp_path / "r3", None, init_from=tmp_path / "nowhere", steps=1,
              progress=False, device="cpu")
    # a dataset with tags the (untagged) source never saw
    with pytest.raises(VocoderError, match=r"the bundle's tags \[\] differ from .*\['wide'\]"):
        check_same_inputs(load_bundle(source), load_train_data(data).spec, ["wide"], data)


def test_cli_init_from(source, data, tmp_path, capsys):
    from vocoder.cli import main

    assert main(["train", "--data", str(data), "--out", str(tmp_path / "c"), "--init-from",
                 str(source), "--steps", "1", "--no-export", "-q", "--device", "cpu"]) == 0
    assert "trained 1 steps" in capsys.readouterr().out
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "c"), "--resume",
                 "--init-from", str(source), "-q", "--device", "cpu"]) == 2
    assert "--init-from starts a new run" in capsys.readouterr().err


def test_a_new_conditioning_keeps_the_stack_and_the_mean_speaker(source):
    """stack_of drops the conditioning inputs and folds the speakers' mean bias into
    gate_bias: the grown model's global gate bias is the source's averaged over speakers,
    and every stack tensor is the source's."""
    b = load_bundle(source)
    src = b.build_model().eval()
    assert b.config.n_speakers >= 2
    new = WaveNet(b.config.replace(n_speakers=0, upsample_scales=(2, 2)))
    report = transfer_weights(new, stack_of(b.weights))
    assert {"cond_in.weight", "upsample.convs.0.weight",
            "upsample.convs.1.weight"} <= set(report.fresh)
    assert not any(n.startswith(CONDITIONING) for n in report.copied)
    assert "cond_proj.weight" in report.copied and not report.unused
    with torch.no_grad():
        mean_bias = torch.stack([src._global_bias(1, torch.tensor([s]), None)
                                 for s in range(b.config.n_speakers)]).mean(0)
        torch.testing.assert_close(new._global_bias(1, None, None), mean_bias)
    for name in ("embed.weight", "dilated.3.weight", "residual.0.weight", "skip.5.weight",
                 "head2.weight", "cond_proj.weight"):
        np.testing.assert_array_equal(new.state_dict()[name].numpy(), b.weights[name])


def test_a_new_conditioning_trains_on_other_inputs(source, tmp_path):
    """Another hop and speaker count: refused as a fine-tune, trained with a new
    conditioning, and recorded in the bundle."""
    other = write_dataset(tmp_path / "other", n_train=3, n_test=1, frames=20, hop=4,
                          speakers=3)
    preset = Preset(tiny_model_fields(upsample_scales=(2, 2)), _train_cfg(steps=1))
    with pytest.raises(VocoderError, match="hop is 6 samples.* 4"):
        train(other, tmp_path / "r", preset, init_from=source, export=False,
              progress=False, device="cpu")
    res = train(other, tmp_path / "r2", preset, init_from=source, new_conditioning=True,
                export=False, progress=False, device="cpu")
    b = load_bundle(res.bundle)
    assert b.config.hop_length == 4 and b.config.n_speakers == 3
    assert b.training["init_from"]["conditioning"] == "new"
    # without --config the source's upsampler is kept, which cannot make this hop
    with pytest.raises(VocoderError, match="upsample_scales multiply to 4"):
        train(other, tmp_path / "r4", None, init_from=source, new_conditioning=True,
              steps=1, export=False, progress=False, device="cpu")
    with pytest.raises(VocoderError, match="--new-conditioning goes with --init-from"):
        train(other, tmp_path / "r3", preset, new_conditioning=True, progress=False,
              device="cpu")


def test_a_new_conditioning_keeps_the_input_weights_of_shared_features(source, data,
                                                                       tmp_path):
    """log_f0 and vuv are read by both: their columns of cond_in are the source's, the
    others' zero, the bias the source's (so the new model starts as the source driven by
    F0 and voicing alone)."""
    b = load_bundle(source)
    more = _appended(data, tmp_path / "more")
    info = json.loads((more / "corpus.json").read_text())
    info["feature_names"][2] = "other"
    (more / "corpus.json").write_text(json.dumps(info))
    names = load_train_data(more).spec.names
    assert list(names) == ["log_f0", "vuv", "other", "extra"]
    w = start_weights(b, names, new_conditioning=True)
    src = b.weights["cond_in.weight"]
    np.testing.assert_array_equal(w["cond_in.weight"][:, :2], src[:, :2])
    assert not w["cond_in.weight"][:, 2:].any()
    np.testing.assert_array_equal(w["cond_in.bias"], b.weights["cond_in.bias"])
    assert "cond_in.weight" not in start_weights(b, ["a", "b"], new_conditioning=True)
    res = train(more, tmp_path / "r", Preset(tiny_model_fields(), _train_cfg(lr=1e-6,
                                                                            steps=1)),
                init_from=source, new_conditioning=True, export=False, progress=False,
                device="cpu")
    got = load_checkpoint(list_checkpoints(res.run_dir)[-1][1])["model"]["cond_in.weight"]
    np.testing.assert_allclose(got[:, :2].numpy(), src[:, :2], atol=1e-4)
