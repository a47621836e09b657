"""The mel predictor (vocoder.mel_predictor) and `vocoder train-postfilter`: numpy equals
torch, training learns, the bundle stores it, and synthesis post-filters toward it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import make_bundle, make_config
from tests.train.synth import BINARY, NAMES, write_dataset
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.cli import main
from vocoder.errors import VocoderError
from vocoder.features.mel import preset
from vocoder.features.spec import FeatureSpec
from vocoder.mel_predictor import MelPredictorConfig, check_weights, predict, torch_module

HOP = 6


def _config(n_speakers=3, **kw) -> MelPredictorConfig:
    mel = preset("hifigan-16k", hop_length=HOP, n_mels=12)
    fields = dict(speaker_dim=4, hidden=8, layers=3, kernel=3,
                  mean=tuple(np.linspace(-5, -2, 12)), std=tuple(np.linspace(1, 2, 12)))
    return MelPredictorConfig(mel, 5, n_speakers, **{**fields, **kw})


@pytest.mark.parametrize("n_speakers", [0, 3])
def test_numpy_prediction_equals_the_torch_network(n_speakers):
    cfg = _config(n_speakers)
    torch.manual_seed(0)
    net = torch_module(cfg).eval()
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    check_weights(cfg, weights, "test")
    f = np.random.default_rng(1).standard_normal((23, 5)).astype(np.float32)
    for speaker in ([None] if not n_speakers else [0, 2]):
        with torch.no_grad():
            ids = None if speaker is None else torch.tensor([speaker])
            ref = net(torch.from_numpy(f)[None], ids)[0].double().numpy()
        ref = ref * np.asarray(cfg.std) + np.asarray(cfg.mean)
        out = predict(cfg, weights, f, speaker)
        assert out.shape == (23, 12) and np.allclose(out, ref, atol=1e-5)


def test_config_round_trip_and_errors():
    cfg = _config()
    assert MelPredictorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(VocoderError, match="kernel odd"):
        _config(kernel=4)
    with pytest.raises(VocoderError, match="expected an object"):
        MelPredictorConfig.from_dict({"hidden": 3})
    w = {k: np.zeros(s, np.float32) for k, s in cfg.shapes().items()}
    w["convs.0.weight"] = np.zeros((8, 7, 3), np.float32)
    with pytest.raises(VocoderError, match="'convs.0.weight'.*needs float32 \\(8, 9, 3\\)"):
        check_weights(cfg, w, "here")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny dataset (3 features, 2 speakers, hop 6) and a bundle that reads it."""
    root = tmp_path_factory.mktemp("mp")
    data = write_dataset(root / "data", n_train=6, n_test=2, frames=60, noise=0.01)
    spec = FeatureSpec(tuple(NAMES), HOP, (6.0, 0.5, 0.5), (0.4, 0.5, 0.3), tuple(BINARY))
    bundle = root / "bundle"
    make_bundle(bundle, make_config(cond_channels=3, n_speakers=2, upsample_scales=(2, 3)),
                feature_spec=spec)
    return data, bundle


def test_train_postfilter_learns_and_is_stored(setup, tmp_path, capsys):
    data, bundle = setup
    errors = {}
    for steps in (1, 150):
        b = tmp_path / f"b{steps}"
        shutil.copytree(bundle, b)
        assert main(["train-postfilter", str(b), "--data", str(data), "--steps",
                     str(steps), "-q"]) == 0
        assert "stored in" in capsys.readouterr().out
        loaded = load_bundle(b)
        cfg, weights = loaded.mel_predictor
        assert cfg.in_channels == 3 and cfg.n_speakers == 2 and cfg.mel.hop_length == HOP
        assert loaded.sampling.postfilter == 2
        doc = json.loads((b / "config.json").read_text())
        errors[steps] = doc["mel_predictor"]["training"]["val_l1_db"]
    assert errors[150] < 0.8 * errors[1], errors


def test_synthesis_pulls_toward_the_predicted_mels(setup, tmp_path, capsys):
    from vocoder.postfilter import postfilter

    data, bundle = setup
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    assert main(["train-postfilter", str(b), "--data", str(data), "--steps", "20", "-q",
                 "--passes", "1"]) == 0
    feats = np.load(data / "feats" / "utt006.npy")
    with Vocoder.load(b) as v:
        out = v.synthesize(feats, speaker=1, seed=3)
        plain = v.synthesize(feats, speaker=1, seed=3, postfilter=0)
        cfg, weights = v.bundle.mel_predictor
        target = predict(cfg, weights, v.feature_spec.normalize(feats), 1)
        assert np.array_equal(out, np.clip(postfilter(plain, target, cfg.mel, 1), -1, 1))
        assert not np.allclose(out, plain)
        streamed = np.concatenate(list(v.stream(feats, speaker=1, seed=3, chunk=50)))
        assert np.array_equal(streamed, out)
        # the speaker reaches the predictor
        assert not np.array_equal(v.synthesize(feats, speaker=0, seed=3),
                                  v.synthesize(feats, speaker=0, seed=3, postfilter=0))
    capsys.readouterr()
    assert main(["info", str(b)]) == 0
    out = capsys.readouterr().out
    assert "mel post-filter 1 pass(es)" in out and "mel predictor" in out


def test_bad_uses_are_clear_errors(setup, tmp_path, capsys):
    data, bundle = setup
    # a dataset at another hop
    other = write_dataset(tmp_path / "other", n_train=2, n_test=1, frames=20, hop=4)
    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    assert main(["train-postfilter", str(b), "--data", str(other), "--steps", "2"]) == 2
    assert "hop 4" in capsys.readouterr().err
    assert load_bundle(b).mel_predictor is None  # nothing written
    # a mel bundle needs none
    from tests.test_mel_api import mel_spec

    mb = tmp_path / "mel"
    make_bundle(mb, make_config(cond_channels=8, upsample_scales=(2, 3)), export=False,
                feature_spec=mel_spec())
    assert main(["train-postfilter", str(mb), "--data", str(data), "--steps", "2"]) == 2
    assert "needs no mel predictor" in capsys.readouterr().err
    # a changed weights file is refused on load
    assert main(["train-postfilter", str(b), "--data", str(data), "--steps", "2", "-q"]) == 0
    raw = bytearray((b / "mel_predictor.safetensors").read_bytes())
    raw[-1] ^= 1
    (b / "mel_predictor.safetensors").write_bytes(bytes(raw))
    with pytest.raises(VocoderError, match="do not match the sha256"):
        load_bundle(b)


def test_pitch_shifted_copies_move_log_f0_and_the_mels(setup, tmp_path, capsys):
    """Each training recording comes with WORLD copies whose log_f0 feature and mels
    moved together; the CLI trains on them and records the setting."""
    from vocoder.data.corpus import load_manifest
    from vocoder.features.mel import mel_frames
    from vocoder.train.mel_predictor import _pairs

    data, bundle = setup
    spec = load_bundle(bundle).feature_spec
    mel_cfg = preset("hifigan-16k", hop_length=HOP)
    entries = load_manifest(data).split("train")[:2]
    pairs = _pairs(entries, spec, mel_cfg, "here", shifts=[[3.0], [-2.0]])
    assert len(pairs) == 4
    for (f0_, m0, s0), (f1, m1, s1), st in ((pairs[0], pairs[1], 3.0),
                                             (pairs[2], pairs[3], -2.0)):
        moved = (f1 - f0_) * np.asarray(spec.std, np.float32)
        np.testing.assert_allclose(moved[:, 0], np.log(2) * st / 12, atol=1e-5)
        assert not moved[:, 1:].any() and s0 == s1 and m0.shape == m1.shape
        assert np.abs(m1 - m0).mean() > 0.1  # the audio was resynthesised shifted
    # what WORLD's resynthesis alone changes cancels: shift 0 gives the recording's mels
    p0 = _pairs(entries[:1], spec, mel_cfg, "here", shifts=[[0.0]])
    np.testing.assert_allclose(p0[1][1], p0[0][1], atol=1e-5)
    assert np.array_equal(pairs[0][1], mel_frames(
        load_manifest(data).load(entries[0])[0] / 32768.0, mel_cfg).T[:len(pairs[0][1])])

    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    assert main(["train-postfilter", str(b), "--data", str(data), "--steps", "3", "-q",
                 "--pitch-shift", "2", "--shifted-copies", "1"]) == 0
    doc = json.loads((b / "config.json").read_text())["mel_predictor"]["training"]
    assert doc["pitch_shift"] == 2.0 and doc["shifted_copies"] == 1
    capsys.readouterr()
    assert main(["train-postfilter", str(b), "--data", str(data), "--steps", "3",
                 "--pitch-shift", "13"]) == 2
    assert "0-12 semitones" in capsys.readouterr().err


def test_pitch_shift_needs_log_f0_and_vuv(setup, tmp_path, capsys):
    data, _ = setup
    spec = FeatureSpec(("a", "b", "c"), HOP, (6.0, 0.5, 0.5), (0.4, 0.5, 0.3),
                       (False, False, False))
    b = tmp_path / "b"
    make_bundle(b, make_config(cond_channels=3, n_speakers=2, upsample_scales=(2, 3)),
                feature_spec=spec, export=False)
    assert main(["train-postfilter", str(b), "--data", str(data), "--steps", "2",
                 "--pitch-shift", "2"]) == 2
    assert "need the features 'log_f0' and 'vuv'" in capsys.readouterr().err
    assert main(["train-postfilter", str(b), "--data", str(data), "--steps", "2",
                 "--kernel", "4"]) == 2
    assert "kernel odd" in capsys.readouterr().err
    assert load_bundle(b).mel_predictor is None
