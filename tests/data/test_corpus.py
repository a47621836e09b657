"""The built-in eSpeak corpus: the on-disk format, splits, and determinism for a seed."""

import json

import numpy as np
import pytest
import soundfile as sf

from vocoder.data import build_espeak_corpus, load_manifest
from vocoder.errors import VocoderError
from vocoder.features import espeak, f0
from vocoder.features import linguistic as L

pytestmark = [
    pytest.mark.skipif(not espeak.is_available(),
                       reason="libespeak-ng.so.1 missing (apt-get install espeak-ng)"),
    pytest.mark.skipif(not f0.pyworld_available(), reason="pyworld missing (pip install pyworld)"),
]


def build(path, seed=0):
    return build_espeak_corpus(path, speakers=2, utterances=2, seed=seed, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    build(root)
    return root


def read_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_format(corpus):
    info = json.loads((corpus / "corpus.json").read_text())
    assert info["format"] == "vocoder-corpus" and info["version"] == 1
    assert info["sample_rate"] == 16000 and info["hop_length"] == 80
    assert info["feature_names"] == L.feature_names()
    assert info["binary"] == L.binary_mask().tolist()
    assert info["speakers"] == ["en-us", "en-us+m3"]
    assert info["source"]["seed"] == 0
    rows = [json.loads(x) for x in (corpus / "manifest.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["spk00_0000", "spk00_0001", "spk01_0000", "spk01_0001"]
    assert [r["split"] for r in rows] == ["train", "test", "train", "test"]
    assert [r["speaker"] for r in rows] == [0, 0, 1, 1]
    for r in rows:
        assert set(r) == {"id", "wav", "features", "speaker", "split", "text"}
        assert r["text"].strip()
        audio, sr = sf.read(corpus / r["wav"], dtype="int16")
        info_wav = sf.info(str(corpus / r["wav"]))
        assert sr == 16000 and info_wav.channels == 1 and info_wav.subtype == "PCM_16"
        feats = np.load(corpus / r["features"])
        assert feats.dtype == np.float32 and feats.shape[1] == len(info["feature_names"])
        assert feats.shape[0] * 80 == audio.size  # exact, by construction
        assert np.all(np.isfinite(feats))
    assert not list(corpus.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_load_manifest(corpus):
    ds = load_manifest(corpus)
    assert len(ds.entries) == 4 and len(ds.split("train")) == len(ds.split("test")) == 2
    assert ds.binary.dtype == bool and ds.binary.size == len(ds.feature_names)
    audio, feats = ds.load(ds.entries[0])
    assert audio.size == feats.shape[0] * ds.hop_length


def test_same_seed_gives_identical_files(corpus, tmp_path):
    again = tmp_path / "again"
    build(again)
    first, second = read_files(corpus), read_files(again)
    assert first.keys() == second.keys()
    for name in first:
        assert first[name] == second[name], name


def test_other_seed_gives_other_sentences(corpus, tmp_path):
    other = build(tmp_path / "other", seed=1)
    texts = [e.text for e in load_manifest(corpus).entries]
    assert [e.text for e in other.entries] != texts


def test_unfinished_build_is_detected(corpus, tmp_path):
    (tmp_path / "manifest.jsonl").write_text((corpus / "manifest.jsonl").read_text())
    with pytest.raises(VocoderError, match="unfinished"):
        load_manifest(tmp_path)


@pytest.mark.parametrize("kwargs,match", [
    ({"speakers": 0}, "speakers"),
    ({"speakers": ["en-us", "en-us"]}, "distinct"),
    ({"utterances": 0}, "utterances"),
    ({"test_fraction": 1.0}, "test_fraction"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(VocoderError, match=match):
        build_espeak_corpus(tmp_path, progress=False, **kwargs)
