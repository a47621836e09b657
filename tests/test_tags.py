"""Tag names <-> the gc vector; tags in the bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import make_config
from vocoder.bundle import load_bundle, save_bundle
from vocoder.errors import VocoderError
from vocoder.model import WaveNet
from vocoder.tags import (
    check_tag_groups,
    check_tag_names,
    global_vector,
    multi_hot,
    parse_gc,
    parse_tag_list,
    tag_vector,
)

KNOWN = ["piano", "organ", "fast", "slow"]


def test_multi_hot_follows_the_known_order():
    np.testing.assert_array_equal(multi_hot(["slow", "piano"], KNOWN), [1, 0, 0, 1])
    assert multi_hot([], KNOWN).tolist() == [0, 0, 0, 0]
    assert multi_hot(["organ"], KNOWN).dtype == np.float32


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(VocoderError, match="unknown tag 'violin'; the known tags are piano, "
                                           "organ, fast, slow"):
        multi_hot(["piano", "violin"], KNOWN)
    with pytest.raises(VocoderError, match="tag 'fast' is given twice"):
        multi_hot(["fast", "fast"], KNOWN)


@pytest.mark.parametrize("names,match", [
    ("piano", "must be a list"), (["a b"], "without commas or spaces"),
    (["a,b"], "without commas"), ([""], "non-empty"), ([3], "non-empty strings"),
    (["a", "b", "a"], "'a' is listed twice"),
])
def test_bad_tag_names(names, match):
    with pytest.raises(VocoderError, match=match):
        check_tag_names(names, "here")


def test_tag_groups():
    assert check_tag_groups([["fast", "slow"]], KNOWN, "x") == (("fast", "slow"),)
    with pytest.raises(VocoderError, match="'loud' is not one of the tags"):
        check_tag_groups([["fast", "loud"]], KNOWN, "x")


def test_parse_tag_list():
    assert parse_tag_list("piano, fast") == ["piano", "fast"]
    assert parse_tag_list("") == []


def test_parse_gc():
    np.testing.assert_array_equal(parse_gc("1,0,0.5,1", KNOWN, 4), [1, 0, 0.5, 1])
    with pytest.raises(VocoderError, match="--gc has 3 values, this model needs 4 values "
                                           r"\(one per tag: piano, organ, fast, slow\)"):
        parse_gc("1,0,1", KNOWN, 4)
    with pytest.raises(VocoderError, match="comma-separated numbers"):
        parse_gc("1,x,0,0", KNOWN, 4)
    with pytest.raises(VocoderError, match="finite"):
        parse_gc("1,nan,0,0", KNOWN, 4)


def test_global_vector_from_the_command_line():
    np.testing.assert_array_equal(global_vector(KNOWN, 4, "organ,fast", None), [0, 1, 1, 0])
    np.testing.assert_array_equal(global_vector(KNOWN, 4, None, "0,0,0,1"), [0, 0, 0, 1])
    from_file = np.ones(4, np.float32)
    assert global_vector(KNOWN, 4, None, None, from_file) is from_file
    with pytest.raises(VocoderError, match=r"pass --tags NAME\[,NAME...\] \(known: piano, "
                                           r"organ, fast, slow\) or --gc with 4 values"):
        global_vector(KNOWN, 4, None, None)
    with pytest.raises(VocoderError, match="takes no tags"):
        global_vector([], 0, "piano", None)
    with pytest.raises(VocoderError, match="takes no gc"):
        global_vector([], 0, None, "1")
    with pytest.raises(VocoderError, match="names no tags.*--gc"):
        tag_vector([], 3, ["piano"])


def _model(gc_channels=3):
    cfg = make_config(gc_channels=gc_channels)
    torch.manual_seed(0)
    return WaveNet(cfg), cfg


def test_bundle_keeps_its_tags(tmp_path):
    model, cfg = _model()
    save_bundle(model, cfg, tmp_path / "b", tags=["a", "b", "c"])
    assert load_bundle(tmp_path / "b").tags == ("a", "b", "c")
    save_bundle(model, cfg, tmp_path / "plain")
    doc = json.loads((tmp_path / "plain" / "config.json").read_text())
    assert "tags" not in doc and load_bundle(tmp_path / "plain").tags == ()


def test_bundle_tags_must_match_gc_channels(tmp_path):
    model, cfg = _model()
    with pytest.raises(VocoderError, match="2 tag names for gc_channels=3"):
        save_bundle(model, cfg, tmp_path / "b", tags=["a", "b"])
    save_bundle(model, cfg, tmp_path / "b", tags=["a", "b", "c"])
    doc = json.loads((tmp_path / "b" / "config.json").read_text())
    doc["tags"] = ["a", "b", "b"]
    (tmp_path / "b" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(VocoderError, match=r"config.json: tag 'b' is listed twice"):
        load_bundle(tmp_path / "b")
