"""``vocoder synthesize`` with --tags / --gc / --seconds, and ``vocoder info``'s tags."""

from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import make_config
from vocoder.api import Vocoder
from vocoder.bundle import save_bundle
from vocoder.cli import main
from vocoder.model import WaveNet
from vocoder.tags import multi_hot

TAGS = ["piano", "organ", "fast"]


@pytest.fixture(scope="module")
def tag_bundle(tmp_path_factory):
    """A random-weight bundle without local conditioning, named tags, exported."""
    from vocoder.export.exporter import export_bundle

    cfg = make_config(cond_channels=0, gc_channels=3)
    torch.manual_seed(0)
    model = WaveNet(cfg)
    with torch.no_grad():
        model.gc_proj.weight.normal_(0, 1.0)  # tags that change the audio
    path = tmp_path_factory.mktemp("tagged") / "bundle"
    save_bundle(model, cfg, path, tags=TAGS)
    export_bundle(path)
    return path


def _run(*argv):
    return main([str(a) for a in argv])


def test_tags_give_the_vector_they_name(tag_bundle, tmp_path):
    out = tmp_path / "a.wav"
    assert _run("synthesize", tag_bundle, "-o", out, "--tags", "fast,piano", "--seconds",
                "0.02", "--seed", 3, "-q") == 0
    audio, sr = sf.read(out, dtype="float32")
    assert sr == 16000 and audio.size == 320
    with Vocoder.load(tag_bundle) as voc:
        gc = multi_hot(["piano", "fast"], TAGS)
        ref = voc.synthesize(None, n_samples=320, seed=3, gc=gc)
        # The tags matter in this bundle: other tags, other likelihoods of the same audio.
        other = voc.teacher_forced_logits(ref, gc=multi_hot(["organ"], TAGS))
        assert np.abs(other - voc.teacher_forced_logits(ref, gc=gc)).max() > 0.1
    q = 1 / 32767  # the wav is PCM16
    np.testing.assert_allclose(audio, np.clip(ref, -1, 1), atol=q)
    assert _run("synthesize", tag_bundle, "-o", tmp_path / "b.wav", "--gc", "1,0,1",
                "--seconds", "0.02", "--seed", 3, "-q") == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "b.wav", dtype="int16")[0],
                                  sf.read(out, dtype="int16")[0])


@pytest.mark.parametrize("argv,match", [
    (["--tags", "piano,violin", "--seconds", "1"],
     "unknown tag 'violin'; the known tags are piano, organ, fast"),
    (["--gc", "1,0", "--seconds", "1"],
     r"--gc has 2 values, this model needs 3 values \(one per tag: piano, organ, fast\)"),
    (["--tags", "piano"], "no local conditioning: pass --seconds N"),
    (["--seconds", "1"], r"conditioned on tags: pass --tags .*known: piano, organ, fast"),
    (["--tags", "piano", "--seconds", "0"], "--seconds must be a number > 0"),
    (["FEATURES", "--tags", "piano", "--seconds", "1"],
     "no local conditioning: drop the FEATURES file"),
])
def test_bad_arguments_for_a_tag_model(tag_bundle, tmp_path, capsys, argv, match):
    out = tmp_path / "x.wav"
    feats = tmp_path / "f.npy"
    np.save(feats, np.zeros((4, 5), np.float32))
    argv = [str(feats) if a == "FEATURES" else a for a in argv]
    assert _run("synthesize", tag_bundle, *argv, "-o", out, "-q") == 2
    err = capsys.readouterr().err
    assert "vocoder: error:" in err and "Traceback" not in err
    assert re.search(match, err), err
    assert not out.exists() and not list(tmp_path.glob(".x*"))


def test_bad_arguments_for_a_conditioned_model(cond_bundle, tmp_path, capsys):
    path, _, cfg = cond_bundle  # cond_channels=5, 3 speakers, gc of 2 values, no tag names
    feats = tmp_path / "f.npy"
    np.save(feats, np.zeros((4, 5), np.float32))
    out = tmp_path / "x.wav"
    cases = [([feats, "--gc", "1,0", "--seconds", "1"], "--seconds is for models without "
              "local conditioning"),
             (["--gc", "1,0"], "this model needs a FEATURES file"),
             ([feats, "--tags", "a"], "names no tags.*--gc"),
             ([feats], "takes a global conditioning vector: pass --gc with 2 values")]
    for argv, match in cases:
        assert _run("synthesize", path, *argv, "-o", out, "-q") == 2
        err = capsys.readouterr().err
        assert re.search(match, err), (argv, err)
    assert not out.exists()
    assert _run("synthesize", path, feats, "--gc", "1,0", "-o", out, "-q") == 0
    assert sf.info(str(out)).frames == 4 * cfg.hop_length


def test_tags_and_gc_exclude_each_other(tag_bundle, tmp_path):
    with pytest.raises(SystemExit) as e:
        _run("synthesize", tag_bundle, "-o", tmp_path / "x.wav", "--tags", "piano",
             "--gc", "1,0,0", "--seconds", "1")
    assert e.value.code == 2


def test_info_lists_the_tags(tag_bundle, capsys):
    assert _run("info", tag_bundle) == 0
    assert "tags              piano, organ, fast" in capsys.readouterr().out


def test_play_takes_tags_and_seconds(tag_bundle, tmp_path, monkeypatch, capsys):
    """``vocoder play`` plays a tag-conditioned model's output as synthesize makes it
    (without an audio device it writes --out)."""
    import sys

    monkeypatch.setitem(sys.modules, "sounddevice", None)
    played = tmp_path / "played.wav"
    assert _run("play", tag_bundle, "--tags", "organ", "--seconds", "0.02", "--seed", 5,
                "--out", played, "--backend", "onnxruntime") == 0
    made = tmp_path / "made.wav"
    assert _run("synthesize", tag_bundle, "-o", made, "--tags", "organ", "--seconds",
                "0.02", "--seed", 5, "-q") == 0
    np.testing.assert_array_equal(sf.read(played, dtype="int16")[0],
                                  sf.read(made, dtype="int16")[0])
    capsys.readouterr()
    assert _run("play", tag_bundle, "--seconds", "0.02", "--out", tmp_path / "x.wav") == 2
    assert re.search(r"conditioned on tags: pass --tags", capsys.readouterr().err)
    assert _run("play", tag_bundle, "--tags", "organ", "--out", tmp_path / "x.wav") == 2
    assert "no local conditioning: pass --seconds N" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_init_writes_a_tagged_bundle(tmp_path, capsys):
    out = tmp_path / "b"
    assert _run("init", out, "--preset", "tiny", "--cond-channels", "0",
                "--tags", "piano,fast", "--no-export") == 0
    with Vocoder.load(out, backend="torch") as voc:
        assert voc.bundle.tags == ("piano", "fast") and voc.config.gc_channels == 2
        assert voc.config.cond_channels == 0
    capsys.readouterr()
    assert _run("init", tmp_path / "c", "--tags", "piano,piano", "--no-export") == 2
    assert "tag 'piano' is listed twice" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()
