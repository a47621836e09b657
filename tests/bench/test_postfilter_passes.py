"""bench.postfilter_passes: evaluate and stream timing per number of post-filter passes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import postfilter_passes
from tests.train.synth import train_tiny_run
from vocoder.cli import main as cli
from vocoder.evaluate import evaluate


def test_arguments_and_means():
    assert postfilter_passes._dataset("data/espeak:12") == ("data/espeak", 12)
    assert postfilter_passes._dataset("data/espeak") == ("data/espeak", 8)
    assert postfilter_passes._dataset("C:/x") == ("C:/x", 8)
    assert postfilter_passes._ints("3,8,12") == [3, 8, 12]
    assert postfilter_passes._mean([1.0, None, 2.0]) == 1.5
    assert postfilter_passes._mean([None, None]) is None


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A bundle trained for a few steps on 80-sample-hop tones, with a mel predictor."""
    root = tmp_path_factory.mktemp("pp")
    data, bundle = train_tiny_run(root)
    assert cli(["train-postfilter", str(bundle), "--data", str(data), "--steps", "5",
                "-q"]) == 0
    example = root / "example.npz"
    np.savez(example, features=np.load(data / "feats" / "utt003.npy"), speaker=1)
    return data, bundle, example


def test_rows_are_the_evaluations_of_each_number_of_passes(run, tmp_path, capsys):
    data, bundle, example = run
    out = tmp_path / "results"
    assert postfilter_passes.main([
        "--bundle", str(bundle), "--data", f"{data}:1", "--passes", "0,2",
        "--seeds", "0,1", "--example", str(example), "--backend", "onnxruntime",
        "--repeats", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    (path,) = out.glob("postfilter-passes-*.json")
    doc = json.loads(path.read_text())
    assert doc["bench"] == "postfilter_passes" and "--passes 0,2" in doc["command"]
    assert doc["machine"] and set(doc["load_average"]) == {"before", "after"}
    assert [r["passes"] for r in doc["rows"]] == [0, 2]
    for row in doc["rows"]:
        s = row["stream"]
        assert s["audio_s"] == pytest.approx(30 * 80 / 16000)
        assert s["realtime_factor"] > 0 and s["first_audio_ms"] > 0
        assert len(s["realtime_factor_runs"]) == 3
        assert s["realtime_factor"] == pytest.approx(np.median(s["realtime_factor_runs"]),
                                                     abs=2e-3)
        d = row[str(data)]
        assert d["n"] == 1 and [r["seed"] for r in d["runs"]] == [0, 1]
        # the pitch check runs at the first seed only
        assert "pitch_shift_cents" in d["runs"][0] and "pitch_shift_cents" not in d["runs"][1]
        for m in postfilter_passes.METRICS:
            known = [r[m] for r in d["runs"] if r[m] is not None]
            assert d["mean"][m] == (pytest.approx(np.mean(known), abs=1e-4) if known
                                    else None)
    # each row is the evaluation with that many passes, so the post-filter shows in it
    ref = evaluate(bundle, data, n=1, backend="onnxruntime", seed=1, n_nll=1, asr=False,
                   postfilter=2, pitch_semitones=0.0, progress=False)
    two = doc["rows"][1][str(data)]["runs"][1]
    zero = doc["rows"][0][str(data)]["runs"][1]
    assert two["mcd_db"] == ref["mcd_db"] and two["stoi_mean"] == ref["stoi_mean"]
    assert zero["mcd_db"] != two["mcd_db"]


def test_stream_only_times_without_evaluating(run, tmp_path, capsys):
    data, bundle, example = run
    out = tmp_path / "results"
    assert postfilter_passes.main([
        "--bundle", str(bundle), "--data", f"{data}:1", "--passes", "0,1",
        "--example", str(example), "--backend", "onnxruntime", "--repeats", "2",
        "--stream-only", "--out", str(out)]) == 0
    capsys.readouterr()
    (path,) = out.glob("postfilter-passes-*.json")
    rows = json.loads(path.read_text())["rows"]
    assert [sorted(r) for r in rows] == [["passes", "stream"]] * 2
    assert all(len(r["stream"]["realtime_factor_runs"]) == 2 for r in rows)


def test_stream_timing_takes_a_saved_mel_for_a_mel_bundle(tmp_path):
    from tests.conftest import make_bundle, make_config
    from tests.test_mel_api import HOP, MEL, N_MELS, SR, _mel, mel_spec

    bundle = tmp_path / "bundle"
    make_bundle(bundle, make_config(cond_channels=N_MELS, upsample_scales=(2, 3)),
                feature_spec=mel_spec())
    example = tmp_path / "mel.npz"  # as `vocoder mel` writes it
    np.savez(example, mel=_mel(40), mel_config=json.dumps(MEL.to_dict()))
    rows = postfilter_passes.stream_timing(str(bundle), str(example), [0, 2], "onnxruntime",
                                           repeats=1)
    assert set(rows) == {0, 2}
    assert all(r["audio_s"] == pytest.approx(40 * HOP / SR, abs=1e-3) for r in rows.values())
    assert all(r["first_audio_ms"] > 0 for r in rows.values())
