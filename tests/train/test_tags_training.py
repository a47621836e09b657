"""Training tag-conditioned and unconditional models from data without frame features."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.train.synth_tags import TAGS, clip_tags, tiny_fields, write_tagged_dataset
from vocoder.api import Vocoder
from vocoder.bundle import load_bundle
from vocoder.cli import main
from vocoder.errors import VocoderError
from vocoder.model import WaveNet
from vocoder.mulaw import dequantize
from vocoder.tags import multi_hot
from vocoder.train import Preset, TrainConfig, train
from vocoder.train.data import collate, load_train_data, make_crop
from vocoder.train.trainer import bundle_from_checkpoint, list_checkpoints, load_checkpoint


def _preset(**train_fields) -> Preset:
    base = dict(batch_size=4, crop_frames=10, lr=3e-3, warmup_steps=3, log_every=5,
                val_every=1000, checkpoint_every=1000, steps=10)
    return Preset(tiny_fields(), TrainConfig(**{**base, **train_fields}))


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return write_tagged_dataset(tmp_path_factory.mktemp("tagged") / "d")


@pytest.fixture(scope="module")
def plain(tmp_path_factory):
    return write_tagged_dataset(tmp_path_factory.mktemp("plain") / "d", tagged=False)


def test_utterances_carry_their_tag_vectors_into_crops(tagged):
    data = load_train_data(tagged)
    assert data.spec is None and data.feature_dim == 0 and data.tags == TAGS
    u = data.train[3]
    assert u.features.shape == (100, 0)  # 600 samples / hop 6
    np.testing.assert_array_equal(u.gc, multi_hot(clip_tags(3), TAGS))
    cfg = WaveNet(Preset(tiny_fields(), TrainConfig()).model_config(0, 0, 3)).cfg
    groups = collate([make_crop(data.train[i], 20, 10, cfg) for i in (0, 1, 3)])
    rows = np.concatenate([g.gc for g in groups])
    np.testing.assert_array_equal(rows, [multi_hot(clip_tags(i), TAGS) for i in (0, 1, 3)])


def test_audio_is_padded_to_whole_frames(tmp_path):
    root = write_tagged_dataset(tmp_path / "d", samples=601, n_train=2, n_test=0)
    data = load_train_data(root)
    assert data.train[0].features.shape[0] == 101 and data.train[0].classes.size == 606


def test_tag_model_trains_and_uses_its_tags(tagged, tmp_path):
    res = train(tagged, tmp_path / "run", _preset(steps=60, val_every=60, lr=1e-2),
                progress=False, device="cpu")
    bundle = load_bundle(res.bundle)
    cfg = bundle.config
    assert (cfg.cond_channels, cfg.n_speakers, cfg.gc_channels) == (0, 0, 3)
    assert bundle.tags == tuple(TAGS) and bundle.feature_spec is None
    assert bundle.training["corpus"]["tags"] == TAGS
    assert load_checkpoint(list_checkpoints(tmp_path / "run")[-1][1])["tags"] == TAGS
    # The tag decides the noise level: the right tags must explain a test clip better
    # than the swapped ones (which they cannot if training ignored or mixed up the tags).
    data = load_train_data(tagged)

    def nll(voc, classes, gc):
        logits = voc.teacher_forced_logits(dequantize(classes, 256), gc=gc)
        return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                       torch.from_numpy(classes)))

    with Vocoder.load(res.bundle, backend="torch") as voc:
        for utt in data.test:
            classes = utt.classes.astype(np.int64)
            swapped = [{"wide": "narrow", "narrow": "wide"}.get(t, t) for t in
                       clip_tags(int(utt.id[4:]))]
            assert nll(voc, classes, utt.gc) \
                < nll(voc, classes, multi_hot(swapped, TAGS)) - 0.3, utt.id


def test_unconditional_model_trains_and_synthesizes(plain, tmp_path, capsys):
    run = tmp_path / "run"
    (tmp_path / "p.json").write_text(json.dumps({"model": tiny_fields(), "train": {
        "batch_size": 4, "crop_frames": 10, "steps": 6, "log_every": 3, "val_every": 6,
        "checkpoint_every": 6, "warmup_steps": 2}}))
    assert main(["train", "--data", str(plain), "--out", str(run), "--config",
                 str(tmp_path / "p.json"), "-q"]) == 0
    bundle = load_bundle(run / "bundle")
    assert (bundle.config.cond_channels, bundle.config.gc_channels) == (0, 0)
    assert bundle.tags == () and bundle.feature_spec is None
    out = tmp_path / "u.wav"
    assert main(["synthesize", str(run / "bundle"), "-o", str(out), "--seconds", "0.01",
                 "-q"]) == 0
    import soundfile as sf

    assert sf.info(str(out)).frames == 160
    assert "wrote" in capsys.readouterr().out


def test_bundle_from_checkpoint_keeps_the_tags(tagged, tmp_path):
    train(tagged, tmp_path / "run", _preset(steps=4, checkpoint_every=2), export=False,
          progress=False, device="cpu")
    path = bundle_from_checkpoint(tmp_path / "run", tmp_path / "b", step=2, export=False)
    assert load_bundle(path).tags == tuple(TAGS)


def test_preset_disagreeing_with_the_tags_fails(tagged, tmp_path):
    preset = Preset({**tiny_fields(), "gc_channels": 5}, TrainConfig(steps=2))
    with pytest.raises(VocoderError, match="gc_channels=5 but the dataset has 3"):
        train(tagged, tmp_path / "run", preset, progress=False, device="cpu")


def test_resume_on_other_tags_fails(tagged, tmp_path):
    train(tagged, tmp_path / "run", _preset(steps=4, checkpoint_every=2), stop_at=2,
          export=False, progress=False, device="cpu")
    other = tmp_path / "other"
    write_tagged_dataset(other)
    info = json.loads((other / "corpus.json").read_text())
    info["tags"] = ["narrow", "wide", "tone"]  # same names, another order: other vectors
    (other / "corpus.json").write_text(json.dumps(info))
    with pytest.raises(VocoderError, match="tags .* differ"):
        train(other, tmp_path / "run", None, resume=True, progress=False, device="cpu")
