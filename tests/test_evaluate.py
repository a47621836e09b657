"""vocoder.evaluate: NLL, F0/V-UV error, MCD and the pitch check on a tiny trained run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from tests.train.synth import train_tiny_run, write_dataset
from vocoder.errors import VocoderError
from vocoder.evaluate import _pyworld, evaluate, f0_track, format_report, mel_cepstra

needs_pyworld = pytest.mark.skipif(_pyworld() is None, reason="pyworld not installed")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A bundle trained for a few steps on 80-sample-hop tones (configs/tiny.json)."""
    return train_tiny_run(tmp_path_factory.mktemp("eval"))


def test_evaluate_end_to_end(run, tmp_path):
    data, bundle = run
    out = tmp_path / "eval.json"
    res = evaluate(bundle, data, n=1, backend="onnxruntime", out=out,
                   audio_dir=tmp_path / "wavs")
    assert math.isfinite(res["nll_bits_per_sample"]) and res["nll_utterances"] == 2
    assert res["split"] == "test" and res["synthesized"] == 1
    assert json.loads(out.read_text())["nll_bits_per_sample"] == res["nll_bits_per_sample"]
    assert (tmp_path / "wavs" / "utt003.wav").is_file()
    # pyworld is a test dependency (the `features` extra): the F0 parts always run here.
    assert _pyworld() is not None
    assert 0.0 <= res["vuv_error_rate"] <= 1.0
    assert math.isfinite(res["mcd_db"])
    assert set(res["pitch_shift"]) >= {"up_cents", "down_cents", "target_cents"}
    assert "NLL" in format_report(res)


def test_without_pyworld_the_f0_parts_are_skipped(run, monkeypatch):
    data, bundle = run
    monkeypatch.setattr("vocoder.evaluate._pyworld", lambda: None)
    res = evaluate(bundle, data, n=1, backend="torch")
    assert math.isfinite(res["nll_bits_per_sample"])
    assert "f0_error_cents_median" not in res and any("pyworld" in n for n in res["notes"])


def test_dataset_that_does_not_fit_the_bundle(run, tmp_path):
    _, bundle = run
    other = write_dataset(tmp_path / "d", n_train=1, n_test=1, frames=20, hop=6)
    with pytest.raises(VocoderError, match="hop"):
        evaluate(bundle, other, n=0)


@needs_pyworld
def test_f0_track_of_a_tone():
    sr, hop, f0 = 16000, 80, 220.0
    audio = 0.5 * np.sin(2 * np.pi * f0 * np.arange(sr) / sr)
    log_f0, voiced = f0_track(audio, sr, hop, sr // hop)
    inner = voiced[10:-10]
    assert inner.mean() > 0.9
    cents = 1200 * np.abs(log_f0[10:-10][inner] - np.log(f0)) / np.log(2)
    assert np.median(cents) < 10


@needs_pyworld
def test_mel_cepstral_distance_is_zero_for_the_same_audio_only():
    sr, hop = 16000, 80
    t = np.arange(sr // 2) / sr
    a = 0.4 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 1200 * t)
    b = 0.4 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)
    ca, cb = (mel_cepstra(x, sr, hop, 100) for x in (a, b))
    assert ca.shape == (100, 25)
    np.testing.assert_array_equal(ca, mel_cepstra(a, sr, hop, 100))
    assert np.abs(ca - cb)[:, 1:].sum() > 1.0


@needs_pyworld
def test_metrics_of_an_oracle_that_follows_the_features(run, tmp_path, monkeypatch):
    """A 'vocoder' that renders the conditioning F0 as a tone: F0 error ~0, the pitch
    shift followed by ~ +/-300 cents, V/UV right. Checks the measuring, not the model."""
    from vocoder.api import Vocoder

    _, bundle = run
    # a little noise: the log envelope of a pure tone is ill-conditioned in its valleys
    data = write_dataset(tmp_path / "d", n_train=1, n_test=1, frames=80, hop=80, noise=0.01)
    rng = np.random.default_rng(1)

    def oracle(self, features, speaker=None, seed=0, **kw):
        f0 = np.repeat(np.exp(features[:, 0]), 80)
        vuv = np.repeat(features[:, 1], 80)
        tone = 0.5 * np.sin(2 * np.pi * np.cumsum(f0) / 16000) * vuv
        return (tone + 0.01 * rng.standard_normal(tone.size)).astype(np.float32)

    monkeypatch.setattr(Vocoder, "synthesize", oracle)
    res = evaluate(bundle, data, n=1, backend="torch")
    assert res["f0_error_cents_median"] < 15
    assert res["vuv_error_rate"] < 0.1
    missed = res["vuv_missed_by_onset_ms"]
    assert list(missed) == ["0-25", "25-50", "50-100", "100-200", "200+"]
    assert all(rate < 0.2 for rate in missed.values() if rate is not None), missed
    assert "since the onset 0-25" in format_report(res)
    assert abs(res["pitch_shift"]["up_cents"] - 300) < 15
    assert abs(res["pitch_shift"]["down_cents"] + 300) < 15
    # independent noise floors keep the MCD of a tone above 0; noise alone is far worse
    monkeypatch.setattr(Vocoder, "synthesize",
                        lambda self, f, *a, **k: 0.05 * rng.standard_normal(80 * len(f)))
    bad = evaluate(bundle, data, n=1, backend="torch", pitch_semitones=0)
    assert res["mcd_db"] < bad["mcd_db"] - 3, (res["mcd_db"], bad["mcd_db"])
    assert bad["vuv_error_rate"] > 0.5
    assert all(rate > 0.5 for rate in bad["vuv_missed_by_onset_ms"].values()
               if rate is not None), bad["vuv_missed_by_onset_ms"]


@needs_pyworld
def test_mcd_of_the_references_mulaw_copy_is_the_floor(run, tmp_path, monkeypatch):
    """A 'vocoder' that returns the reference's own mu-law copy scores exactly the
    quantised-reference MCD, which is above 0; the recording itself scores 0."""
    from vocoder.api import Vocoder
    from vocoder.data.corpus import load_manifest
    from vocoder.mulaw import dequantize, quantize

    _, bundle = run
    q = json.loads((Path(bundle) / "config.json").read_text())["model"][
        "quantization_channels"]
    data = write_dataset(tmp_path / "d", n_train=1, n_test=2, frames=120, hop=80,
                         noise=0.01)
    ds = load_manifest(data)
    refs = {}
    for e in ds.entries:
        audio16, feats = ds.load(e)
        refs[feats.tobytes()] = audio16.astype(np.float64) / 32768.0
    monkeypatch.setattr(Vocoder, "synthesize", lambda self, f, *a, **k: dequantize(
        quantize(refs[f.tobytes()], q), q))
    copy = evaluate(bundle, data, n=2, backend="torch", pitch_semitones=0, asr=False)
    assert copy["mcd_db_quantized_reference"] > 0.1
    assert copy["mcd_db"] == pytest.approx(copy["mcd_db_quantized_reference"], abs=1e-3)
    assert "reference mu-law copy" in format_report(copy)
    monkeypatch.setattr(Vocoder, "synthesize", lambda self, f, *a, **k: refs[f.tobytes()])
    exact = evaluate(bundle, data, n=2, backend="torch", pitch_semitones=0, asr=False)
    assert exact["mcd_db"] == 0.0
    assert exact["mcd_db_quantized_reference"] == copy["mcd_db_quantized_reference"]


def test_intelligibility_of_an_oracle_that_returns_the_recording(run, tmp_path, monkeypatch):
    """Generated audio = the reference recording: STOI 1, top PESQ, and the ASR scores of
    the generated and the reference clip identical (same decoder settings), ratio 1."""
    import soundfile as sf

    from vocoder.api import Vocoder
    from vocoder.data.corpus import load_manifest

    _, bundle = run
    data = write_dataset(tmp_path / "d", n_train=1, n_test=2, frames=200, hop=80)
    ds = load_manifest(data)
    recording = {ds.load(e)[1].tobytes(): sf.read(e.wav, dtype="float32")[0]
                 for e in ds.entries}
    monkeypatch.setattr(Vocoder, "synthesize",
                        lambda self, features, *a, **k: recording[features.tobytes()])
    res = evaluate(bundle, data, n=2, backend="torch", pitch_semitones=0)
    assert res["stoi_mean"] == pytest.approx(1.0, abs=1e-4)
    assert res["pesq_wb_mean"] > 4.0
    assert res["asr_utterances"] == 2 and res["asr_words"] == 4  # "tone one", "tone two"
    assert res["asr_wer"] == res["asr_wer_reference"] > 0  # "tone" is not in the grammar
    assert res["asr_wer_ratio"] == 1.0
    for row in res["per_utterance"]:
        assert row["asr_hyp"] == row["asr_ref_hyp"] and row["asr_wer"] == row["asr_ref_wer"]
    assert any("not in the grammar" in n for n in res["notes"])
    report = format_report(res)
    assert "STOI" in report and "PESQ" in report and "ASR WER ratio" in report

    # noise in place of the recording: STOI falls, PESQ bottoms out
    rng = np.random.default_rng(0)
    monkeypatch.setattr(Vocoder, "synthesize",
                        lambda self, f, *a, **k: 0.3 * rng.standard_normal(80 * len(f)))
    bad = evaluate(bundle, data, n=2, backend="torch", pitch_semitones=0, asr=False)
    assert bad["stoi_mean"] < 0.6 and bad["pesq_wb_mean"] < 1.5
    assert "asr_wer" not in bad and any("ASR" in n for n in bad["notes"])


def test_without_the_eval_extra_its_metrics_are_skipped(run, monkeypatch):
    data, bundle = run
    monkeypatch.setattr("vocoder.asr_wer.missing_packages", lambda: ["pocketsphinx"])
    monkeypatch.setattr("vocoder.intelligibility.missing_packages", lambda: ["pystoi", "pesq"])
    res = evaluate(bundle, data, n=1, backend="torch", pitch_semitones=0)
    assert math.isfinite(res["nll_bits_per_sample"])
    assert not {"stoi_mean", "pesq_wb_mean", "asr_wer"} & set(res)
    assert not {"stoi", "pesq_wb", "asr_wer"} & set(res["per_utterance"][0])
    notes = [n for n in res["notes"] if "pip install -e .[eval]" in n]
    assert len(notes) == 2 and "STOI and PESQ" in notes[0] and "pocketsphinx" in notes[1]
    format_report(res)
