"""The command line end to end, through ``vocoder.cli.main`` and once as a real process."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocoder.cli import main


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "b"
    assert main(["init", str(path), "--preset", "tiny", "--cond-channels", "3",
                 "--speakers", "2"]) == 0
    return path


def test_init_info_synthesize(bundle, tmp_path, capsys):
    assert main(["info", str(bundle), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["receptive_field_samples"] == 1 + 2 * (1 + 2 + 4)
    assert info["exported"] == ["condition.onnx", "step.onnx"]
    feats = tmp_path / "f.npz"
    np.savez(feats, features=np.random.default_rng(0).standard_normal((20, 3)).astype(
        np.float32), speaker=1)
    out = tmp_path / "out.wav"
    assert main(["synthesize", str(bundle), str(feats), "-o", str(out), "-q"]) == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and len(audio) == 20 * 4
    # the torch reference gives the same audio for the same seed
    out2 = tmp_path / "out2.wav"
    assert main(["synthesize", str(bundle), str(feats), "-o", str(out2), "-q",
                 "--backend", "torch", "--fold", "off"]) == 0
    assert np.array_equal(sf.read(out2)[0], audio)


def test_errors_are_one_line_and_write_nothing(bundle, tmp_path, capsys):
    feats = tmp_path / "bad.npy"
    np.save(feats, np.zeros((20, 7), np.float32))
    out = tmp_path / "out.wav"
    assert main(["synthesize", str(bundle), str(feats), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "expected 3 feature dimensions" in err and "Traceback" not in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert main(["synthesize", str(bundle), str(tmp_path / "nope.npy"), "-o", str(out)]) == 2
    assert "no such file" in capsys.readouterr().err


def test_export_command_rewrites_graphs(bundle, capsys):
    (bundle / "step.onnx").unlink()
    assert main(["export", str(bundle), "--batch", "1,8"]) == 0
    assert "max abs diff" in capsys.readouterr().out
    assert (bundle / "step.onnx").is_file()
    doc = json.loads((bundle / "config.json").read_text())
    assert doc["export"]["onnx"]["batches"] == [1, 8]


def test_doctor_and_help_as_a_process():
    r = subprocess.run([sys.executable, "-m", "vocoder", "doctor"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "onnxruntime" in r.stdout and "torch" in r.stdout
    assert "\ncpu " in r.stdout
    r = subprocess.run([sys.executable, "-m", "vocoder", "--help"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "synthesize" in r.stdout


def test_machine_facts_are_strings_or_none():
    from vocoder import machine

    assert isinstance(machine.cpu_model(), str) and machine.cpu_model()
    caches = machine.cpu_caches()
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in caches.items())
    if Path("/sys/devices/system/cpu/cpu0/cache/index0").is_dir():
        assert "L1d" in caches
    assert machine.huge_pages() in (None, "always", "madvise", "never")


def test_output_names_a_writable_audio_format(bundle, tmp_path, capsys):
    feats = tmp_path / "f.npy"
    np.save(feats, np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32))
    # A directory, or a suffix that names no audio format: one-line errors, nothing written.
    for bad, msg in ((tmp_path, "is a directory"), (tmp_path / "out.xyz", "suffix .xyz"),
                     (tmp_path / "out", "suffix (none)")):
        assert main(["synthesize", str(bundle), str(feats), "-o", str(bad), "-q"]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err
    assert not (tmp_path / "out.xyz").exists() and not (tmp_path / "out").exists()
    # Other suffixes write the format they name, not WAV under another name.
    for suffix, fmt in ((".flac", "FLAC"), (".ogg", "OGG"), (".wav", "WAV")):
        out = tmp_path / f"out{suffix}"
        assert main(["synthesize", str(bundle), str(feats), "-o", str(out), "-q"]) == 0
        assert sf.info(out).format == fmt


def test_init_refuses_an_existing_bundle_unless_forced(bundle, capsys):
    before = (bundle / "model.safetensors").read_bytes()
    assert main(["init", str(bundle), "--preset", "tiny", "--seed", "3"]) == 2
    assert "--force" in capsys.readouterr().err
    assert (bundle / "model.safetensors").read_bytes() == before
    # Forced without export: the old graphs (of the old weights) are gone, not listed.
    assert main(["init", str(bundle), "--preset", "tiny", "--seed", "3", "--force",
                 "--no-export"]) == 0
    assert (bundle / "model.safetensors").read_bytes() != before
    assert not list(bundle.glob("*.onnx"))
    capsys.readouterr()
    assert main(["info", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["exported"] == []


def test_bundle_files_get_the_same_permissions(bundle):
    modes = {p.name: p.stat().st_mode & 0o777 for p in bundle.iterdir() if p.is_file()}
    assert len(set(modes.values())) == 1, modes


def test_say_finds_the_demo_model_from_any_directory(tmp_path, monkeypatch):
    from vocoder.cli_say import DEMO, demo_bundle

    monkeypatch.chdir(tmp_path)
    assert demo_bundle() == Path(__file__).resolve().parents[1] / DEMO
    (tmp_path / DEMO).mkdir(parents=True)
    (tmp_path / DEMO / "config.json").write_text("{}")
    assert demo_bundle() == tmp_path / DEMO  # the current directory's comes first


def test_info_shows_the_receptive_field_of_both_stacks(tmp_path, capsys):
    from vocoder.config import WaveNetConfig, context_receptive_field

    fields = {**WaveNetConfig(residual_channels=8, gate_channels=16, skip_channels=16,
                              layers=4, stacks=1, dilation_limit=8,
                              upsample_scales=(2, 2)).to_dict(),
              "context_pool": 40, "context_channels": 4, "context_layers": 3,
              "context_dilation_limit": 4}
    (tmp_path / "c.json").write_text(json.dumps(fields))
    path = tmp_path / "ctx"
    assert main(["init", str(path), "--config", str(tmp_path / "c.json")]) == 0
    capsys.readouterr()
    assert main(["info", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    cfg = WaveNetConfig.from_dict(info["config"])
    assert context_receptive_field(cfg) == 1 + 1 + 2 + 4
    # 8 blocks of 40 behind the earliest gate bias the main stack reads (14 back)
    assert info["receptive_field_samples"] == 40 * 9 + 15 - 1
    assert info["context_dilations"] == [1, 2, 4]
    assert info["exported"] == ["condition.onnx", "context_step.onnx", "step.onnx"]
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "receptive field   374 samples" in out and "context stack" in out
