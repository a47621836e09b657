"""``vocoder evaluate-tags``: end to end on tiny random bundles, and its refusals."""

from __future__ import annotations

import json

import pytest
import soundfile as sf
import torch

from tests.conftest import make_config
from tests.music import needs_fluidsynth
from tests.train.synth_tags import TAGS, write_tagged_dataset
from vocoder.bundle import save_bundle
from vocoder.cli import main
from vocoder.data import music
from vocoder.errors import VocoderError
from vocoder.evaluate_tags import evaluate_tags
from vocoder.model import WaveNet


def tag_bundle(path, tags, **cfg_fields):
    from vocoder.export.exporter import export_bundle

    cfg = make_config(**{"cond_channels": 0, "gc_channels": len(tags), **cfg_fields})
    torch.manual_seed(0)
    save_bundle(WaveNet(cfg), cfg, path, tags=tags)
    export_bundle(path)
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_tagged_dataset(tmp_path_factory.mktemp("tags") / "d")


def test_runs_end_to_end_through_the_cli(data, tmp_path, capsys):
    bundle = tag_bundle(tmp_path / "b", TAGS)
    report = tmp_path / "r.json"
    assert main(["evaluate-tags", str(bundle), "--data", str(data), "--n", "2", "--seconds",
                 "0.02", "--json", str(report), "--audio-dir", str(tmp_path / "wavs"),
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "tag accuracy of" in out and "narrow" in out
    res = json.loads(report.read_text())
    assert set(res["per_tag"]) == set(TAGS)
    # Test split: clip 6 (wide, tone) and clip 7 (narrow); two clips each.
    assert [c["tags"] for c in res["clips"]] == [["wide", "tone"]] * 2 + [["narrow"]] * 2
    assert res["per_tag"]["wide"]["n_generated"] == 2
    assert res["per_tag"]["tone"]["n_real"] == 1 and res["per_tag"]["tone"]["chance"] == 0.5
    assert res["classifier"]["groups"] == [["wide", "narrow"], ["tone"]]
    wide_narrow = res["per_group"][0]
    assert wide_narrow["tags"] == ["wide", "narrow"] and wide_narrow["chance"] == 0.5
    assert wide_narrow["generated"] == pytest.approx(
        (res["per_tag"]["wide"]["generated"] + res["per_tag"]["narrow"]["generated"]) / 2)
    assert "mean wide/narrow: chance 50 %" in out
    for r in res["per_tag"].values():
        assert 0 <= r["generated"] <= 1 and 0 <= r["real"] <= 1
    wavs = sorted((tmp_path / "wavs").glob("*.wav"))
    assert len(wavs) == 4 and all(sf.info(str(w)).frames == 320 for w in wavs)


def test_tag_order_may_differ_from_the_dataset(data, tmp_path):
    bundle = tag_bundle(tmp_path / "b", ["tone", "narrow", "wide"])
    res = evaluate_tags(bundle, data, n=1, seconds=0.01, progress=False)
    assert [c["tags"] for c in res["clips"]] == [["wide", "tone"], ["narrow"]]


@pytest.mark.parametrize("kind,match", [
    ("other tags", r"has the tags \['a', 'b', 'c'\], the dataset"),
    ("untagged", "not a tag-conditioned bundle"),
    ("local conditioning", "needs frame features"),
])
def test_refuses_bundles_it_cannot_evaluate(data, tmp_path, kind, match):
    if kind == "other tags":
        bundle = tag_bundle(tmp_path / "b", ["a", "b", "c"])
    elif kind == "untagged":
        bundle = tag_bundle(tmp_path / "b", [])
    else:
        bundle = tag_bundle(tmp_path / "b", TAGS, cond_channels=2)
    with pytest.raises(VocoderError, match=match):
        evaluate_tags(bundle, data, n=1, seconds=0.01, progress=False)


def test_refuses_an_untagged_dataset(tmp_path):
    plain = write_tagged_dataset(tmp_path / "d", tagged=False)
    with pytest.raises(VocoderError, match="the dataset has no tags"):
        evaluate_tags(tag_bundle(tmp_path / "b", TAGS), plain, n=1, progress=False)


@needs_fluidsynth
def test_on_the_music_corpus(music_corpus, tmp_path):
    bundle = tag_bundle(tmp_path / "b", music.tags(), upsample_scales=(4, 4, 5))
    res = evaluate_tags(bundle, music_corpus, n=1, seconds=0.05, progress=False)
    assert len(res["clips"]) == len(music.combinations())
    for tag in music.tags():
        r = res["per_tag"][tag]
        assert r["n_real"] > 0 and r["n_generated"] > 0
        assert r["chance"] == pytest.approx(0.2 if tag in music.FAMILIES else 0.5)
