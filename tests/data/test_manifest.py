"""User manifests (JSONL/CSV): validation errors name the utterance; features for own data."""

import json

import numpy as np
import pytest
import soundfile as sf

from vocoder.data import build_features_for_manifest, load_manifest, read_manifest
from vocoder.errors import VocoderError
from vocoder.features import f0

SR, HOP = 16000, 80
needs_pyworld = pytest.mark.skipif(not f0.pyworld_available(),
                                   reason="pyworld missing (pip install pyworld)")


def write_wav(path, n, sr=SR, freq=150.0):
    t = np.arange(n) / sr
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), sr,
             subtype="PCM_16")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def user_data(tmp_path):
    """Two utterances of 0.2 s with (Tf, 4) .npy features at hop 80 (40 frames)."""
    rows = []
    for k, n in enumerate((3200, 3190)):
        write_wav(tmp_path / f"u{k}.wav", n)
        np.save(tmp_path / f"u{k}.npy", np.random.default_rng(k).normal(size=(40, 4)))
        rows.append({"id": f"u{k}", "wav": f"u{k}.wav", "features": f"u{k}.npy",
                     "speaker": "alice" if k == 0 else "bob", "split": "train"})
    return tmp_path, rows


def test_reads_jsonl_and_csv(user_data):
    root, rows = user_data
    entries = read_manifest(write_jsonl(root / "m.jsonl", rows), hop_length=HOP)
    assert [e.id for e in entries] == ["u0", "u1"]
    assert [e.speaker for e in entries] == [0, 1]
    assert entries[0].wav == root / "u0.wav" and entries[0].features == root / "u0.npy"
    csv = root / "m.csv"
    csv.write_text("id,wav,features,speaker\nu0,u0.wav,u0.npy,3\nu1,u1.wav,u1.npy,\n")
    entries = read_manifest(csv, hop_length=HOP)
    assert [(e.id, e.speaker, e.split) for e in entries] == [("u0", 3, "train"),
                                                             ("u1", 0, "train")]


def corrupt(root, rows, what):
    if what == "missing wav":
        rows[1]["wav"] = "nope.wav"
    elif what == "sample rate":
        write_wav(root / "u1.wav", 2205, sr=22050)
    elif what == "length":
        np.save(root / "u1.npy", np.zeros((43, 4)))
    elif what == "nan":
        bad = np.zeros((40, 4))
        bad[5, 2] = np.nan
        np.save(root / "u1.npy", bad)
    elif what == "duplicate":
        rows[1]["id"] = "u0"
    elif what == "split":
        rows[1]["split"] = "validation"
    elif what == "missing features":
        rows[1]["features"] = "gone.npy"
    return rows


@pytest.mark.parametrize("what,match", [
    ("missing wav", "'u1'.*not found"),
    ("sample rate", "'u1'.*22050 Hz"),
    ("length", "'u1'.*43 feature frames"),
    ("nan", "'u1'.*NaN"),
    ("duplicate", "'u0' appears twice"),
    ("split", "'u1'.*split"),
    ("missing features", "'u1'.*no such file"),
])
def test_bad_input_names_the_utterance(user_data, what, match):
    root, rows = user_data
    rows = corrupt(root, rows, what)
    with pytest.raises(VocoderError, match=match):
        read_manifest(write_jsonl(root / "m.jsonl", rows), hop_length=HOP)


def test_length_within_one_frame_is_accepted(user_data):
    root, rows = user_data
    np.save(root / "u1.npy", np.zeros((41, 4)))  # audio is 39.9 frames
    read_manifest(write_jsonl(root / "m.jsonl", rows), hop_length=HOP)


def test_manifest_file_errors(tmp_path):
    with pytest.raises(VocoderError, match="not found"):
        read_manifest(tmp_path / "none.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "wav": "a.wav"}\nnot json\n')
    with pytest.raises(VocoderError, match=":2: not valid JSON"):
        read_manifest(tmp_path / "bad.jsonl")
    (tmp_path / "bad.csv").write_text("name,path\na,a.wav\n")
    with pytest.raises(VocoderError, match="columns id and wav"):
        read_manifest(tmp_path / "bad.csv")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(VocoderError, match="no utterances"):
        read_manifest(tmp_path / "empty.jsonl")


@needs_pyworld
def test_build_features_from_npy(user_data, tmp_path):
    root, rows = user_data
    ds = build_features_for_manifest(write_jsonl(root / "m.jsonl", rows), tmp_path / "out",
                                     hop_length=HOP, progress=False)
    assert ds.speakers == ["alice", "bob"]
    assert ds.feature_names == ["user_0", "user_1", "user_2", "user_3", "log_f0", "vuv"]
    assert ds.binary.tolist() == [False] * 5 + [True]
    for entry in ds.entries:
        audio, feats = ds.load(entry)
        assert feats.shape == (40, 6) and audio.size == 40 * HOP
        assert sf.info(str(entry.wav)).frames == 40 * HOP  # padded to whole frames
        np.testing.assert_allclose(np.exp(np.median(feats[:, -2])), 150, rtol=0.03)
    user = np.load(root / "u0.npy").astype(np.float32)
    assert np.array_equal(ds.load(ds.entries[0])[1][:, :4], user)
    assert load_manifest(tmp_path / "out").entries == ds.entries


@needs_pyworld
def test_build_features_from_hts_labels(tmp_path):
    write_wav(tmp_path / "a.wav", 4000)  # 0.25 s = 50 frames
    (tmp_path / "a.lab").write_text("0 1000000 x^x-sil+a=b\n1000000 2500000 x^sil-a+b=c\n")
    (tmp_path / "q.hed").write_text('QS "C-a" {*-a+*}\nQS "C-sil" {*-sil+*}\n')
    manifest = write_jsonl(tmp_path / "m.jsonl",
                           [{"id": "a", "wav": "a.wav", "labels": "a.lab", "split": "test"}])
    with pytest.raises(VocoderError, match="question file"):
        build_features_for_manifest(manifest, tmp_path / "out", progress=False)
    ds = build_features_for_manifest(manifest, tmp_path / "out", tmp_path / "q.hed",
                                     hop_length=HOP, progress=False)
    assert ds.feature_names == ["qs:C-a", "qs:C-sil", "pos_in_phone", "log_phone_dur",
                                "log_f0", "vuv"]
    assert ds.binary.tolist() == [True, True, False, False, False, True]
    _, feats = ds.load(ds.split("test")[0])
    assert feats.shape == (50, 6)
    assert np.all(feats[:20, 1] == 1) and np.all(feats[20:, 0] == 1)
    # Labels ending more than a frame away from the audio are refused.
    (tmp_path / "a.lab").write_text("0 1000000 x^x-sil+a=b\n1000000 4000000 x^sil-a+b=c\n")
    with pytest.raises(VocoderError, match="'a'.*labels last"):
        build_features_for_manifest(manifest, tmp_path / "out2", tmp_path / "q.hed",
                                    hop_length=HOP, progress=False)


def test_load_manifest_rejects_bad_corpus_json(tmp_path):
    (tmp_path / "corpus.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(VocoderError, match="format"):
        load_manifest(tmp_path)
    with pytest.raises(VocoderError, match="not a vocoder dataset"):
        load_manifest(tmp_path / "missing")


@needs_pyworld
def test_load_manifest_checks_against_corpus_json(user_data, tmp_path):
    root, rows = user_data
    out = tmp_path / "out"
    build_features_for_manifest(write_jsonl(root / "m.jsonl", rows), out, hop_length=HOP,
                                progress=False)
    info = json.loads((out / "corpus.json").read_text())
    (out / "corpus.json").write_text(json.dumps({**info, "feature_names": info[
        "feature_names"][1:], "binary": info["binary"][1:]}))
    with pytest.raises(VocoderError, match="'u0'.*6 dims.*declares 5"):
        load_manifest(out)
    (out / "corpus.json").write_text(json.dumps({**info, "speakers": ["alice"]}))
    with pytest.raises(VocoderError, match="'u1'.*speaker 1"):
        load_manifest(out)
    (out / "corpus.json").write_text(json.dumps({**info, "version": 99}))
    with pytest.raises(VocoderError, match="version 99"):
        load_manifest(out)
