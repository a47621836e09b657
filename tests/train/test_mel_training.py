"""``vocoder train`` on a mel dataset, unchanged: a few real steps, a bundle that knows
its mels, synthesis from a mel and copy synthesis from a wav."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.data.test_mel_corpus import TINY_MEL, mel_args
from tests.train.synth import tiny_model_fields, write_dataset, write_preset
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.cli import main

STEPS = dict(batch_size=2, crop_frames=8, lr=3e-3, warmup_steps=1, steps=3, log_every=1,
             val_every=3, val_utterances=1, checkpoint_every=3, keep_last=1)


@pytest.fixture(scope="module")
def mel_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mel")
    src = write_dataset(root / "src", n_train=3, n_test=1, frames=800, hop=5)
    assert main(["features", "--manifest", str(src), "--out", str(root / "mel"),
                 *mel_args("--mel-f0")]) == 0
    return root / "mel", src


def test_train_a_mel_model_and_synthesise(mel_data, tmp_path, capsys):
    data, src = mel_data
    preset = write_preset(tmp_path / "p.json", **STEPS)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--config", str(preset),
                 "-q"]) == 0
    assert "trained 3 steps" in capsys.readouterr().out
    bundle = load_bundle(run / "bundle")
    assert bundle.feature_spec.mel == TINY_MEL
    assert bundle.config.cond_channels == 10 and bundle.config.n_speakers == 0
    assert bundle.feature_spec.names[-2:] == ("log_f0", "vuv")
    with Vocoder.load(run / "bundle") as voc:
        mel = np.random.default_rng(0).standard_normal((10, 30)).astype(np.float32)
        assert voc.synthesize(mel).shape == (180,)
    wav = next(iter(sorted((src / "wavs").glob("*.wav"))))
    out = tmp_path / "re.wav"
    assert main(["resynth", str(run / "bundle"), str(wav), "-o", str(out), "-q"]) == 0
    assert sf.info(str(out)).frames == sf.info(str(wav)).frames
    # evaluate reads the dataset's (frames, D) features as they are
    from vocoder.evaluate import evaluate

    res = evaluate(run / "bundle", data, n=1, pitch_semitones=0, asr=False)
    assert np.isfinite(res["nll_bits_per_sample"]) and res["nll_utterances"] == 1


def test_train_with_the_f0_excitation(mel_data, tmp_path):
    data, _ = mel_data
    model = {**tiny_model_fields(), "excitation": 2}
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--config",
                 str(write_preset(tmp_path / "p.json", model, **STEPS)), "-q",
                 "--no-export"]) == 0
    cfg = load_bundle(run / "bundle").config
    assert (cfg.excitation, cfg.f0_feature, cfg.vuv_feature) == (2, 8, 9)


def test_the_hop_must_be_the_product_of_upsample_scales(mel_data, tmp_path, capsys):
    data, _ = mel_data
    model = {**tiny_model_fields(), "upsample_scales": [2, 2]}
    preset = write_preset(tmp_path / "p.json", model, **STEPS)
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--config",
                 str(preset), "-q"]) == 2
    err = capsys.readouterr().err
    assert "upsample_scales [2, 2] = 4" in err and "hop_length 6" in err


def test_the_demo_preset_fits_its_mel_analysis():
    from vocoder.features.mel import PRESETS
    from vocoder.train import load_preset

    path = Path(__file__).parents[2] / "configs" / "demo-mel.json"
    cfg = load_preset(path).model_config(80, 0)
    mel = PRESETS["hifigan-16k"]
    assert (cfg.sample_rate, cfg.hop_length) == (mel.sample_rate, mel.hop_length)
