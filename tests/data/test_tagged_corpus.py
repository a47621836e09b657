"""The dataset format's tags, and datasets without frame features or speakers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.train.synth_tags import GROUPS, TAGS, clip_tags, write_tagged_dataset
from vocoder.data import load_manifest
from vocoder.errors import VocoderError


def test_tagged_dataset_loads(tmp_path):
    root = write_tagged_dataset(tmp_path / "d", n_train=3, n_test=1, samples=601)
    ds = load_manifest(root)
    assert not ds.has_features and ds.speakers == []
    assert ds.tags == TAGS and ds.tag_groups == GROUPS
    assert [e.tags for e in ds.entries] == [tuple(clip_tags(i)) for i in range(4)]
    np.testing.assert_array_equal(ds.gc(ds.entries[0]), [1, 0, 1])
    np.testing.assert_array_equal(ds.gc(ds.entries[1]), [0, 1, 0])
    audio, feats = ds.load(ds.entries[0])
    assert feats.shape == (101, 0) and feats.dtype == np.float32
    assert audio.size == 606 and not audio[601:].any()  # zero-padded to whole frames


def test_untagged_dataset_has_no_vectors(tmp_path):
    ds = load_manifest(write_tagged_dataset(tmp_path / "d", tagged=False))
    assert ds.tags == [] and ds.gc(ds.entries[0]) is None


def _edit(root, rows=None, info=None):
    if rows is not None:
        (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if info is not None:
        (root / "corpus.json").write_text(json.dumps(info))


@pytest.mark.parametrize("what,match", [
    ("unknown tag", r"utterance 'clip001': unknown tag 'loud'; the dataset's tags are "
                    r"wide, narrow, tone"),
    ("repeated tag", r"utterance 'clip001': tag 'wide' is listed twice"),
    ("tags not a list", r"utterance 'clip001': tags must be a list"),
    ("comma in a tag", r"utterance 'clip001': tag names must be non-empty strings"),
    ("row without tags", r"utterance 'clip001': no \"tags\".*give \[\] for none"),
    ("tags in an untagged dataset", r"utterance 'clip001': has tags \['wide'\], but "
                                    r"corpus.json declares none"),
    ("features without feature names", r"utterance 'clip001': has features"),
    ("speaker without speakers", r"utterance 'clip001': speaker 2 but the dataset has 0"),
    ("group member unknown", r"tag group member 'loud' is not one of the tags"),
    ("tag in two groups", r"tag 'wide' is in two tag groups"),
    ("group of one", r"a tag group needs at least two tags"),
    ("corpus tags repeated", r"corpus.json: tag 'tone' is listed twice"),
])
def test_bad_tagged_datasets_name_the_problem(tmp_path, what, match):
    root = write_tagged_dataset(tmp_path / "d", n_train=2, n_test=0)
    rows = [json.loads(x) for x in (root / "manifest.jsonl").read_text().splitlines()]
    info = json.loads((root / "corpus.json").read_text())
    if what == "unknown tag":
        rows[1]["tags"] = ["loud"]
    elif what == "repeated tag":
        rows[1]["tags"] = ["wide", "wide"]
    elif what == "tags not a list":
        rows[1]["tags"] = {"wide": 1}
    elif what == "comma in a tag":
        rows[1]["tags"] = ["wide,tone"]
    elif what == "row without tags":
        del rows[1]["tags"]
    elif what == "tags in an untagged dataset":
        del info["tags"], info["tag_groups"]
        del rows[0]["tags"]
        rows[1]["tags"] = ["wide"]
    elif what == "features without feature names":
        np.save(root / "f.npy", np.zeros((100, 2), np.float32))
        rows[1]["features"] = "f.npy"
    elif what == "speaker without speakers":
        rows[1]["speaker"] = 2
    elif what == "group member unknown":
        info["tag_groups"] = [["wide", "loud"]]
    elif what == "tag in two groups":
        info["tag_groups"] = [["wide", "narrow"], ["wide", "tone"]]
    elif what == "group of one":
        info["tag_groups"] = [["wide"]]
    elif what == "corpus tags repeated":
        info["tags"] = ["wide", "narrow", "tone", "tone"]
    _edit(root, rows, info)
    with pytest.raises(VocoderError, match=match):
        load_manifest(root)


def test_speech_dataset_without_features_in_a_row_still_fails(tmp_path):
    # A dataset that declares feature names needs them in every row, as before.
    root = write_tagged_dataset(tmp_path / "d", n_train=2, n_test=0, tagged=False)
    info = json.loads((root / "corpus.json").read_text())
    info.update(feature_names=["a"], binary=[False], speakers=["s"])
    _edit(root, info=info)
    with pytest.raises(VocoderError, match="utterance 'clip000': no features"):
        load_manifest(root)
