"""``vocoder features --mel``: any manifest of wavs (or a dataset directory) -> a mel
dataset that training reads unchanged."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf

from tests.train.synth import write_dataset
from vocoder.cli import main
from vocoder.data.corpus import load_manifest
from vocoder.errors import VocoderError
from vocoder.features import analysis
from vocoder.features.mel import preset

#: HiFi-GAN's analysis shrunk to the tests' tiny model (hop 6 = 2 x 3), as --mel-param
#: flags and as the config they make.
TINY_PARAMS = ["n_fft=128", "hop_length=6", "win_length=24", "n_mels=8"]
TINY_MEL = preset("hifigan", sample_rate=16000, n_fft=128, hop_length=6, win_length=24,
                  n_mels=8)


def mel_args(*extra: str, name: str = "hifigan", params=("sample_rate=16000",
                                                         *TINY_PARAMS)) -> list[str]:
    out = ["--mel", name, "--no-progress", *extra]
    for p in params:
        out += ["--mel-param", p]
    return out


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tone dataset at 16 kHz (2 speakers, 4 train + 2 test utterances), used as a
    manifest of wavs."""
    return write_dataset(tmp_path_factory.mktemp("src") / "d", frames=800, hop=5)  # 0.25 s


def test_builds_a_mel_dataset_from_a_manifest(source, tmp_path, capsys):
    out = tmp_path / "mel"
    assert main(["features", "--manifest", str(source / "manifest.jsonl"), "--out", str(out),
                 *mel_args()]) == 0
    assert "hop 6" in capsys.readouterr().out
    info = json.loads((out / "corpus.json").read_text())
    assert (info["sample_rate"], info["hop_length"]) == (16000, 6)
    assert info["feature_names"] == [f"mel_{k}" for k in range(8)]
    assert info["binary"] == [False] * 8 and info["speakers"] == []
    assert info["source"]["resampled_from"] is None
    ds = load_manifest(out)
    assert ds.mel == TINY_MEL
    src = {e.id: e for e in load_manifest(source).entries}
    for e in ds.entries:
        audio, feats = ds.load(e)
        orig, _ = sf.read(src[e.id].wav, dtype="int16")
        t = math.ceil(orig.size / 6)
        assert feats.shape == (t, 8) and audio.size == t * 6
        assert np.array_equal(audio[:orig.size], orig) and not audio[orig.size:].any()
        assert np.array_equal(feats, analysis.frame_features(orig, TINY_MEL))
        assert (e.speaker, e.split, e.text) == (0, src[e.id].split, src[e.id].text)


def test_from_a_dataset_directory_keeping_speakers_with_f0(source, tmp_path):
    out = tmp_path / "mel"
    assert main(["features", "--manifest", str(source), "--out", str(out),
                 *mel_args("--keep-speakers", "--mel-f0")]) == 0
    ds = load_manifest(out)
    assert ds.speakers == ["spk0", "spk1"]
    assert [e.speaker for e in ds.entries] == [e.speaker for e in load_manifest(source).entries]
    assert ds.feature_names[-2:] == ["log_f0", "vuv"] and len(ds.feature_names) == 10
    assert ds.binary.tolist() == [False] * 9 + [True]
    _, feats = ds.load(ds.entries[0])
    assert feats[:, 9].any()  # the tones are voiced
    assert np.allclose(np.exp(feats[feats[:, 9] > 0, 8]), 400, rtol=0.6)  # 200-600 Hz
    assert ds.mel == TINY_MEL


def test_resamples_to_the_analysis_rate(source, tmp_path):
    out = tmp_path / "mel8k"
    assert main(["features", "--manifest", str(source), "--out", str(out),
                 *mel_args(params=("sample_rate=8000", "fmax=null", *TINY_PARAMS))]) == 0
    ds = load_manifest(out)
    assert ds.sample_rate == 8000 and ds.info["source"]["resampled_from"] == 16000
    assert sf.info(str(ds.entries[0].wav)).samplerate == 8000
    assert ds.mel.fmax is None and ds.mel.sample_rate == 8000


def test_errors(source, tmp_path, capsys):
    out = tmp_path / "x"
    args = ["features", "--manifest", str(source), "--out", str(out)]
    assert main([*args, *mel_args("--hop-length", "80")]) == 2
    assert "--hop-length cannot go with --mel" in capsys.readouterr().err
    assert main([*args, *mel_args(name="hifi")]) == 2
    assert "unknown mel preset 'hifi'" in capsys.readouterr().err
    assert main([*args, "--mel-f0"]) == 2
    assert "go with --mel PRESET" in capsys.readouterr().err
    assert main([*args, *mel_args(params=("bands=3",))]) == 2
    assert "unknown mel config fields ['bands']" in capsys.readouterr().err
    assert not (out / "corpus.json").exists()


def test_a_dataset_whose_mel_disagrees_is_refused(source, tmp_path):
    out = tmp_path / "mel"
    main(["features", "--manifest", str(source), "--out", str(out), *mel_args()])
    info = json.loads((out / "corpus.json").read_text())
    info["mel"]["hop_length"] = 12
    (out / "corpus.json").write_text(json.dumps(info))
    with pytest.raises(VocoderError, match="the mel analysis is at 16000 Hz, hop 12; the "
                       "dataset at 16000 Hz, hop 6"):
        _ = load_manifest(out).mel
