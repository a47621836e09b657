"""The commands: train-asr, recognize (its output format), evaluate-asr, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from tests.asr.synth import RATE, write_dataset, write_preset
from tests.conftest import make_bundle, make_config
from vocoder.asr.bundle import load_asr_bundle
from vocoder.asr.recognize import recognize
from vocoder.bundle import load_bundle
from vocoder.cli import main
from vocoder.errors import VocoderError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data dir, bundle dir) of a tiny model trained through the CLI."""
    import torch

    root = tmp_path_factory.mktemp("asr-cli")
    data = write_dataset(root / "data", n_train=6, n_test=2)
    preset = write_preset(root / "p.json", batch_size=4, crop_frames=6, lr=1e-2,
                          warmup_steps=2, steps=6, log_every=3, val_every=6,
                          val_utterances=2, checkpoint_every=6)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train-asr", "--data", str(data), "--out", str(root / "run"),
                     "--config", str(preset), "--device", "cpu", "-q"]) == 0
    finally:
        torch.set_num_threads(threads)
    return data, root / "run" / "bundle"


def test_train_asr_prints_both_losses(trained, capsys, tmp_path):
    data, _ = trained
    preset = write_preset(tmp_path / "p.json", batch_size=2, crop_frames=4, steps=2,
                          val_utterances=0)
    assert main(["train-asr", "--data", str(data), "--out", str(tmp_path / "run"),
                 "--config", str(preset), "--aux-weight", "0.5", "--device", "cpu",
                 "-q"]) == 0
    out = capsys.readouterr().out
    assert "frame loss" in out and "next-sample loss" in out and "bundle" in out
    assert load_asr_bundle(tmp_path / "run" / "bundle").training["train_config"][
        "aux_weight"] == 0.5


def test_recognize_prints_contiguous_timed_phones(trained, capsys):
    data, bundle = trained
    wav = data / "wavs" / "utt006.wav"
    assert main(["recognize", str(bundle), str(wav)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    phones = load_asr_bundle(bundle).phones
    rows = [line.split() for line in lines]
    assert rows and all(len(r) == 3 for r in rows)
    starts, ends = [float(r[0]) for r in rows], [float(r[1]) for r in rows]
    assert starts[0] == 0.0
    assert ends[-1] == pytest.approx(sf.info(str(wav)).frames / RATE, abs=1e-3)
    assert all(s < e for s, e in zip(starts, ends))
    assert starts[1:] == pytest.approx(ends[:-1])
    assert all(r[2] in phones for r in rows)
    assert all(a[2] != b[2] for a, b in zip(rows, rows[1:]))  # collapsed


def test_recognize_json_matches_the_library(trained, capsys):
    data, bundle = trained
    wav = data / "wavs" / "utt007.wav"
    assert main(["recognize", str(bundle), str(wav), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    audio, _ = sf.read(str(wav), dtype="float32")
    want = recognize(bundle, audio)
    assert [g["phone"] for g in got] == [s.phone for s in want]
    assert [g["end"] for g in got] == pytest.approx([s.end for s in want], abs=1e-4)


def test_evaluate_asr_reports_and_writes_json(trained, capsys, tmp_path):
    data, bundle = trained
    out = tmp_path / "eval.json"
    assert main(["evaluate-asr", str(bundle), "--data", str(data), "--json", str(out),
                 "-q"]) == 0
    text = capsys.readouterr().out
    assert "frame accuracy" in text and "phone error rate" in text
    res = json.loads(out.read_text())
    assert res["utterances"] == 2 and len(res["per_utterance"]) == 2
    assert 0 <= res["frame_accuracy"] <= 1
    assert res["per"] == pytest.approx((res["substitutions"] + res["deletions"]
                                        + res["insertions"]) / res["reference_phones"])
    assert res["frames"] == sum(r["frames"] for r in res["per_utterance"])


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_wrong_sample_rate_is_a_clear_error(trained, capsys, tmp_path):
    _, bundle = trained
    wav = tmp_path / "low.wav"
    sf.write(wav, np.zeros(800, np.float32), 8000, subtype="PCM_16")
    assert "8000 Hz" in _error(capsys, ["recognize", str(bundle), str(wav)])


def test_empty_stereo_and_missing_audio_are_clear_errors(trained, capsys, tmp_path):
    _, bundle = trained
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), RATE, subtype="PCM_16")
    assert "empty" in _error(capsys, ["recognize", str(bundle), str(empty)])
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.zeros((100, 2), np.float32), RATE, subtype="PCM_16")
    assert "mono" in _error(capsys, ["recognize", str(bundle), str(stereo)])
    assert "not found" in _error(capsys, ["recognize", str(bundle), str(tmp_path / "x.wav")])
    with pytest.raises(VocoderError, match="NaN"):
        recognize(bundle, np.array([0.0, np.nan], np.float32))


def test_a_vocoder_bundle_is_refused_by_recognize(trained, capsys, tmp_path):
    data, _ = trained
    make_bundle(tmp_path / "voc", make_config(), export=False)
    err = _error(capsys, ["recognize", str(tmp_path / "voc"),
                          str(data / "wavs" / "utt000.wav")])
    assert "vocoder (speech synthesis) bundle" in err
    assert "not a speech-recognition bundle" in _error(
        capsys, ["evaluate-asr", str(tmp_path), "--data", str(data)])


def test_an_asr_bundle_is_refused_by_the_vocoder(trained, capsys):
    _, bundle = trained
    with pytest.raises(VocoderError, match="speech-recognition bundle"):
        load_bundle(bundle)
    assert "speech-recognition bundle" in _error(capsys, ["info", str(bundle)])


def test_evaluate_on_a_dataset_without_alignment(trained, capsys, tmp_path):
    _, bundle = trained
    plain = write_dataset(tmp_path / "plain", alignment=False)
    assert "no phone alignment" in _error(
        capsys, ["evaluate-asr", str(bundle), "--data", str(plain), "-q"])


def test_tampered_weights_are_refused(trained, tmp_path):
    import shutil

    _, bundle = trained
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / "phones.txt").write_text("a\n_\n")
    with pytest.raises(VocoderError, match="phones"):
        load_asr_bundle(copy)
    shutil.copy(bundle / "phones.txt", copy / "phones.txt")
    with open(copy / "model.safetensors", "ab") as f:
        f.write(b"\0")
    with pytest.raises(VocoderError, match="sha256"):
        load_asr_bundle(copy)


def test_switch_penalty_smooths_the_output(trained, capsys):
    data, bundle = trained
    wav = str(data / "wavs" / "utt006.wav")
    assert main(["recognize", str(bundle), wav, "--switch-penalty", "1e6"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["recognize", str(bundle), wav, "--switch-penalty", "-1"])
    assert main(["evaluate-asr", str(bundle), "--data", str(data), "--switch-penalty", "2",
                 "-q"]) == 0
    assert "switch penalty 2" in capsys.readouterr().out
