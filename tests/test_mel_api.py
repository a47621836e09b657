"""Mel input through the public API and the CLI, on a random-weight tiny mel bundle:
layouts, torch tensors, batches, streaming, playback, clear errors, copy synthesis."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import make_bundle, make_config
from tests.test_playback import null_sink  # noqa: F401 (PulseAudio's null sink, a fixture)
from vocoder import playback
from vocoder.api import Vocoder
from vocoder.cli import main
from vocoder.errors import VocoderError
from vocoder.features import analysis
from vocoder.features.mel import MelConfig, preset
from vocoder.features.spec import FeatureSpec
from vocoder.postfilter import MAX_PASSES

N_MELS, HOP, SR = 8, 6, 16000
MEL = MelConfig(SR, 128, HOP, 24, N_MELS, name="tiny-test")


def mel_spec(mel: MelConfig = MEL) -> FeatureSpec:
    """Raw log mels normalised with made-up statistics."""
    n = mel.n_mels
    return FeatureSpec(tuple(analysis.feature_names(mel, False)), mel.hop_length,
                       (-6.0,) * n, (2.0,) * n, tuple(analysis.binary_mask(mel, False)), mel)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A tiny exported mel bundle: 8 bands, hop 6 = 2 x 3, no speakers."""
    path = tmp_path_factory.mktemp("mel") / "bundle"
    make_bundle(path, make_config(cond_channels=N_MELS, upsample_scales=(2, 3)),
                feature_spec=mel_spec())
    return path


@pytest.fixture(scope="module")
def voc(bundle):
    with Vocoder.load(bundle) as v:
        yield v


def _mel(frames: int, seed: int = 0) -> np.ndarray:
    """A log mel as acoustic models emit it: (n_mels, T) float32."""
    return (np.random.default_rng(seed).standard_normal((N_MELS, frames)) * 2 - 6).astype(
        np.float32)


def test_bundle_records_the_analysis(bundle, voc):
    doc = json.loads((bundle / "config.json").read_text())
    assert doc["features"]["mel"]["name"] == "tiny-test"
    assert voc.mel_config == MEL and voc.mel_config.name == "tiny-test"
    assert voc.hop_length == MEL.hop_length


def test_layouts_numpy_and_torch_give_the_same_audio(voc):
    mel = _mel(40)
    ref = voc.synthesize(mel.T, seed=1, layout="frames-first")
    assert ref.shape == (40 * HOP,) and ref.dtype == np.float32
    t = torch.from_numpy(mel).requires_grad_()  # as a model's output: with grad
    for name, x, layout in [("(n_mels, T)", mel, None), ("(T, n_mels)", mel.T.copy(), None),
                            ("(1, n_mels, T)", mel[None], None),
                            ("torch (n_mels, T) with grad", t, None),
                            ("channels-first said", mel, "channels-first")]:
        out = voc.synthesize(x, seed=1, layout=layout)
        assert out.shape == ref.shape or out.shape == (1, *ref.shape), name
        assert np.array_equal(out.reshape(ref.shape), ref), name
    half = voc.synthesize(torch.from_numpy(mel).half(), seed=1)  # read as float32
    assert np.array_equal(half, voc.synthesize(mel.astype(np.float16).astype(np.float32),
                                               seed=1))


def test_a_square_mel_is_read_channels_first(voc):
    mel = _mel(N_MELS, seed=2)
    assert np.array_equal(voc.synthesize(mel, seed=0),
                          voc.synthesize(mel.T, seed=0, layout="frames-first"))
    assert not np.array_equal(voc.synthesize(mel, seed=0),
                              voc.synthesize(mel, seed=0, layout="frames-first"))


def test_batches_in_both_kinds(voc):
    a, b = _mel(30, seed=3), _mel(30, seed=4)
    batch = np.stack([a, b])  # (B, n_mels, T)
    out = voc.synthesize(batch, seed=5)
    assert out.shape == (2, 30 * HOP)
    assert np.array_equal(out[0], voc.synthesize(a, seed=5))
    listed = voc.synthesize_batch([a, b], seed=5)
    assert np.array_equal(out[1], listed[1])
    as_torch = voc.synthesize_batch(torch.from_numpy(batch), seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(as_torch, listed))
    one = voc.synthesize(torch.from_numpy(a)[None], seed=5)  # (1, n_mels, T) -> (1, N)
    assert one.shape == (1, 30 * HOP) and np.array_equal(one[0], out[0])


@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_stream_equals_synthesize(bundle, backend):
    mel = _mel(50, seed=6)
    with Vocoder.load(bundle, backend=backend) as v:
        whole = v.synthesize(mel, seed=7)
        for x in (mel, torch.from_numpy(mel)[None], mel.T):
            chunks = list(v.stream(x, seed=7, chunk=64))
            assert len(chunks) > 1
            assert np.array_equal(np.concatenate(chunks), whole)


def test_render_and_play_take_mels(voc, tmp_path):
    mel = torch.from_numpy(_mel(30, seed=8))
    n, _ = playback.render(voc, mel, out=tmp_path / "r.wav", seed=2)
    audio, sr = sf.read(tmp_path / "r.wav", dtype="float32")
    ref = voc.synthesize(mel, seed=2)
    assert n == len(audio) == len(ref) == 30 * HOP and sr == SR
    assert np.abs(audio - np.clip(ref, -1, 1)).max() <= 1.5 / 32768


def test_play_a_mel_live(null_sink, voc, tmp_path):  # noqa: F811
    mel = torch.from_numpy(_mel(400, seed=11))  # 2,400 samples
    wav = tmp_path / "played.wav"
    rep = playback.play(voc, mel, seed=3, device=null_sink, out=wav)
    ref = voc.synthesize(mel, seed=3)
    assert rep.samples == len(ref) == 400 * HOP
    played, _ = sf.read(wav, dtype="float32")
    assert np.abs(played - np.clip(ref, -1, 1)).max() <= 1.5 / 32768


def test_play_cli_writes_a_saved_mel_without_a_device(bundle, voc, tmp_path, monkeypatch):
    mel = _mel(30, seed=9)
    np.save(tmp_path / "m.npy", mel)
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    out = tmp_path / "played.wav"
    assert main(["play", str(bundle), str(tmp_path / "m.npy"), "--out", str(out),
                 "--backend", "onnxruntime"]) == 0
    audio, _ = sf.read(out, dtype="float32")
    assert np.abs(audio - np.clip(voc.synthesize(mel), -1, 1)).max() <= 1.5 / 32768


def test_wrong_band_count_names_both_conventions(voc):
    with pytest.raises(VocoderError) as e:
        voc.synthesize(np.zeros((100, 20), np.float32))
    msg = str(e.value)
    assert "got shape (100, 20)" in msg and "mel-conditioned" in msg
    assert "8 log-mel bands" in msg and "'tiny-test'" in msg and "hop 6 at 16000 Hz" in msg
    assert "(8, T)" in msg and "(T, 8)" in msg
    assert "vocos (100 bands)" in msg  # what the given shape looks like
    for bad in (np.zeros((20, 9), np.float32), np.zeros(20, np.float32),
                torch.zeros(2, 3, N_MELS, 20)):
        with pytest.raises(VocoderError, match="8 log-mel bands"):
            voc.synthesize(bad)
    with pytest.raises(VocoderError, match="layout must be one of"):
        voc.synthesize(_mel(10), layout="bands-first")
    with pytest.raises(VocoderError, match="expected 8 feature|8 log-mel bands"):
        voc.synthesize(_mel(10), layout="frames-first")  # (8, 10) read as 8 frames of 10
    with pytest.raises(VocoderError, match="a batch of 2 utterances"):
        next(voc.stream(np.stack([_mel(10), _mel(10)])))
    with pytest.raises(VocoderError, match="zero frames"):
        voc.synthesize(np.zeros((N_MELS, 0), np.float32))
    with pytest.raises(VocoderError, match="NaN"):
        voc.synthesize(np.full((N_MELS, 5), np.nan, np.float32))


def test_mel_config_is_checked_against_the_bundle(voc):
    mel = _mel(10)
    assert voc.synthesize(mel, mel_config=MEL).shape == (60,)
    assert voc.synthesize(mel, mel_config=MEL.replace(name="other").to_dict()).shape == (60,)
    # frame placement is tolerated (HiFi-GAN vocodes Tacotron 2's centred mels)
    voc.synthesize(mel, mel_config=MEL.replace(padding="center"))
    with pytest.raises(VocoderError) as e:
        voc.synthesize(mel, mel_config=MEL.replace(hop_length=12, name="hop12"))
    msg = str(e.value)
    assert "'hop12'" in msg and "'tiny-test'" in msg and "differ in hop_length" in msg
    assert "upsample_scales" in msg
    with pytest.raises(VocoderError, match="differ in sample_rate, n_fft, hop_length, "
                       "win_length, n_mels"):
        next(voc.stream(mel, mel_config="hifigan"))
    with pytest.raises(VocoderError, match="unknown mel preset"):
        voc.synthesize(mel, mel_config="hifi-gan")


def test_non_mel_bundle_keeps_its_layout_and_refuses_mel_config(cond_bundle):
    path, _, cfg = cond_bundle
    with Vocoder.load(path) as v:
        assert v.mel_config is None
        feats = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
        ref = v.synthesize(feats, speaker=1, gc=[0.1, 0.2])
        assert np.array_equal(v.synthesize(torch.from_numpy(feats), speaker=1, gc=[0.1, 0.2]),
                              ref)
        assert np.array_equal(v.synthesize(feats.T, speaker=1, gc=[0.1, 0.2],
                                           layout="channels-first"), ref)
        with pytest.raises(VocoderError, match="expected 5 feature dimensions"):
            v.synthesize(feats.T, speaker=1, gc=[0.1, 0.2])  # no guessing here
        with pytest.raises(VocoderError, match="not mel-conditioned"):
            v.synthesize(feats, speaker=1, gc=[0.1, 0.2], mel_config="hifigan")


# -- the command line --------------------------------------------------------------------
def _wav(path, seconds: float, rate: int, channels: int = 1, seed: int = 0):
    n = int(seconds * rate)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * np.random.default_rng(seed).standard_normal(n)
    sf.write(path, np.stack([x] * channels, 1) if channels > 1 else x, rate, subtype="PCM_16")
    return n


def test_synthesize_cli_takes_a_saved_mel(bundle, voc, tmp_path, capsys):
    mel = _mel(25, seed=10)
    np.save(tmp_path / "m.npy", mel)
    out = tmp_path / "o.wav"
    assert main(["synthesize", str(bundle), str(tmp_path / "m.npy"), "-o", str(out), "-q"]) == 0
    audio, sr = sf.read(out, dtype="float32")
    assert sr == SR and len(audio) == 25 * HOP
    assert np.abs(audio - np.clip(voc.synthesize(mel), -1, 1)).max() <= 1.5 / 32768
    np.save(tmp_path / "bad.npy", np.zeros((80, 25), np.float32))
    bad = tmp_path / "bad.wav"
    assert main(["synthesize", str(bundle), str(tmp_path / "bad.npy"), "-o", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "8 log-mel bands" in err and "Traceback" not in err
    assert not bad.exists() and not list(tmp_path.glob(".bad*"))


def test_resynth_end_to_end(bundle, tmp_path, capsys):
    n = _wav(tmp_path / "in.wav", 0.05, SR)
    out = tmp_path / "out.wav"
    assert main(["resynth", str(bundle), str(tmp_path / "in.wav"), "-o", str(out), "-q",
                 "--save-mel", str(tmp_path / "m.npz")]) == 0
    audio, sr = sf.read(out)
    assert sr == SR and len(audio) == n
    saved = np.load(tmp_path / "m.npz")
    assert saved["mel"].shape == (N_MELS, -(-n // HOP))
    assert MelConfig.from_dict(json.loads(str(saved["mel_config"]))) == MEL
    # the same audio as synthesising the saved mel and cutting the padding
    synth = tmp_path / "synth.wav"
    assert main(["synthesize", str(bundle), str(tmp_path / "m.npz"), "-o", str(synth),
                 "-q"]) == 0
    assert np.array_equal(sf.read(synth)[0][:n], audio)
    # another rate is resampled (and said so), several channels mixed
    n8 = _wav(tmp_path / "in8.wav", 0.05, 8000, channels=2)
    capsys.readouterr()
    assert main(["resynth", str(bundle), str(tmp_path / "in8.wav"), "-o", str(out),
                 "-q"]) == 0
    printed = capsys.readouterr().out
    assert "resampled 8000 -> 16000 Hz" in printed and "mixed 2 channels" in printed
    audio, sr = sf.read(out)
    assert sr == SR and len(audio) == 2 * n8


def test_resynth_errors_write_nothing(bundle, cond_bundle, tmp_path, capsys):
    _wav(tmp_path / "in8.wav", 0.02, 8000)
    out = tmp_path / "out.wav"
    assert main(["resynth", str(bundle), str(tmp_path / "in8.wav"), "-o", str(out),
                 "--no-resample"]) == 2
    assert "at 8000 Hz" in capsys.readouterr().err
    assert main(["resynth", str(cond_bundle[0]), str(tmp_path / "in8.wav"), "-o",
                 str(out)]) == 2
    assert "not mel-conditioned" in capsys.readouterr().err
    (tmp_path / "text.wav").write_text("not audio")
    assert main(["resynth", str(bundle), str(tmp_path / "text.wav"), "-o", str(out)]) == 2
    assert "cannot read it as audio" in capsys.readouterr().err
    assert main(["resynth", str(bundle), str(tmp_path / "in8.wav"), "-o",
                 str(tmp_path / "out.xyz")]) == 2
    assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".out*"))


def test_mel_cli_writes_a_preset_or_the_bundles_analysis(bundle, tmp_path, capsys,
                                                         monkeypatch):
    n = _wav(tmp_path / "in.wav", 0.25, SR)
    assert main(["mel", str(tmp_path / "in.wav"), "-o", str(tmp_path / "h.npy"),
                 "--mel", "hifigan"]) == 0
    h = np.load(tmp_path / "h.npy")
    assert h.shape == (80, -(-round(n * 22050 / SR) // 256)) and h.dtype == np.float32
    assert "'hifigan'" in capsys.readouterr().out
    assert main(["mel", str(tmp_path / "in.wav"), "-o", str(tmp_path / "c.npz"),
                 "--mel", "hifigan", "--mel-param", "sample_rate=16000",
                 "--mel-param", "hop_length=200"]) == 0
    c = np.load(tmp_path / "c.npz")
    assert c["mel"].shape == (80, -(-n // 200))
    assert json.loads(str(c["mel_config"]))["hop_length"] == 200
    assert main(["mel", str(tmp_path / "in.wav"), "-o", str(tmp_path / "b.npy"),
                 "--bundle", str(bundle)]) == 0
    assert np.load(tmp_path / "b.npy").shape == (N_MELS, -(-n // HOP))
    for bad in (["--mel", "hifigan", "--bundle", str(bundle)], [],
                ["--mel", "nope"], ["--mel", "hifigan", "--mel-param", "hop"]):
        assert main(["mel", str(tmp_path / "in.wav"), "-o", str(tmp_path / "x.npy"),
                     *bad]) == 2
    assert not (tmp_path / "x.npy").exists()
    # a hifigan-16k mel saved with its config, given to the tiny bundle: a clear error
    np.savez(tmp_path / "p.npz", mel=_mel(20), mel_config=json.dumps(
        preset("hifigan-16k").to_dict()))
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    capsys.readouterr()
    assert main(["play", str(bundle), str(tmp_path / "p.npz"), "--out",
                 str(tmp_path / "p.wav")]) == 2
    assert "differ in n_fft, hop_length, win_length, n_mels" in capsys.readouterr().err
    assert not (tmp_path / "p.wav").exists()


def test_the_demo_analysis_and_upsampling_stream_exactly(tmp_path):
    """hifigan-16k's 80 bands at hop 200 = 5 x 5 x 8, as configs/demo-mel.json: streamed
    conditioning (a few frames of context per chunk) equals the whole utterance, and
    copy synthesis of a real recording keeps its length."""
    mel = preset("hifigan-16k")
    path = tmp_path / "b"
    make_bundle(path, make_config(cond_channels=80, upsample_scales=(5, 5, 8), cond_hidden=8),
                feature_spec=mel_spec(mel))
    wav = tmp_path / "arctic.wav"
    x, sr = sf.read(Path(__file__).parent / "features" / "data" / "arctic_a0009.wav",
                    dtype="float64")
    sf.write(wav, x[8000:12800], sr, subtype="PCM_16")  # 0.3 s of speech
    with Vocoder.load(path) as v:
        feats = v.prepare(np.random.default_rng(0).standard_normal((80, 12)).astype(
            np.float32) - 6)
        whole = v.synthesize(feats, seed=4, layout="frames-first")
        assert np.array_equal(np.concatenate(list(v.stream(feats.T, seed=4, chunk=333))),
                              whole)
    out = tmp_path / "re.wav"
    assert main(["resynth", str(path), str(wav), "-o", str(out), "-q"]) == 0
    assert sf.info(str(out)).frames == 4800 and sf.info(str(out)).samplerate == 16000


# -- the mel post-filter ------------------------------------------------------------------
def test_postfilter_is_applied_after_sampling_and_streams_exactly(bundle, voc):
    from vocoder.postfilter import postfilter

    mel = _mel(60, seed=12)
    plain = voc.synthesize(mel, seed=4)
    assert np.array_equal(voc.synthesize(mel, seed=4, postfilter=0), plain)  # the default
    for passes in (1, 2):
        out = voc.synthesize(mel, seed=4, postfilter=passes)
        ref = np.clip(postfilter(plain, mel.T, MEL, passes), -1, 1)
        assert out.shape == plain.shape and np.array_equal(out, ref)
        assert not np.allclose(out, plain)
        # given normalised, the mels are mapped back for the target
        normed = voc.feature_spec.normalize(mel.T)
        assert np.allclose(voc.synthesize(normed, seed=4, normalize=False, postfilter=passes,
                                          layout="frames-first"), out, atol=1e-5)
        for backend in ("onnxruntime", "torch"):
            with Vocoder.load(bundle, backend=backend) as v:
                chunks = list(v.stream(mel, seed=4, chunk=64, postfilter=passes))
                assert len(chunks) > 1 and all(len(c) for c in chunks)
                assert np.array_equal(np.concatenate(chunks), out)


def test_postfilter_through_render_play_and_resynth(voc, bundle, tmp_path, null_sink):  # noqa: F811
    mel = torch.from_numpy(_mel(400, seed=13))
    ref = voc.synthesize(mel, seed=2, postfilter=2)
    playback.render(voc, mel, out=tmp_path / "r.wav", seed=2, postfilter=2)
    audio, _ = sf.read(tmp_path / "r.wav", dtype="float32")
    assert np.abs(audio - ref).max() <= 1.5 / 32768
    rep = playback.play(voc, mel, seed=2, device=null_sink, out=tmp_path / "p.wav",
                        postfilter=2)
    assert rep.samples == len(ref)
    played, _ = sf.read(tmp_path / "p.wav", dtype="float32")
    assert np.abs(played - ref).max() <= 1.5 / 32768
    n = _wav(tmp_path / "in.wav", 0.05, SR)
    for passes in ("0", "1"):
        assert main(["resynth", str(bundle), str(tmp_path / "in.wav"), "-o",
                     str(tmp_path / f"o{passes}.wav"), "-q", "--postfilter", passes]) == 0
    a0, a1 = (sf.read(tmp_path / f"o{p}.wav")[0] for p in "01")
    assert len(a0) == len(a1) == n and not np.allclose(a0, a1)


def test_the_bundle_sets_the_default_postfilter(bundle, tmp_path):
    import shutil

    copy = tmp_path / "pf"
    shutil.copytree(bundle, copy)
    doc = json.loads((copy / "config.json").read_text())
    doc["sampling"]["postfilter"] = 2
    (copy / "config.json").write_text(json.dumps(doc))
    mel = _mel(30, seed=14)
    with Vocoder.load(copy) as v, Vocoder.load(bundle) as plain:
        assert v.sampling.postfilter == 2 and plain.sampling.postfilter == 0
        assert np.array_equal(v.synthesize(mel, seed=1), plain.synthesize(mel, seed=1,
                                                                           postfilter=2))
        assert np.array_equal(v.synthesize(mel, seed=1, postfilter=0),
                              plain.synthesize(mel, seed=1))
    doc["sampling"]["postfilter"] = MAX_PASSES + 1
    (copy / "config.json").write_text(json.dumps(doc))
    with pytest.raises(VocoderError, match="config.json.*postfilter must be a number of "
                                           "passes from 0"):
        Vocoder.load(copy)


def test_postfilter_needs_a_mel_bundle(cond_bundle, tmp_path, capsys):
    path, _, _ = cond_bundle
    feats = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
    with Vocoder.load(path) as v:
        with pytest.raises(VocoderError, match="needs a mel-conditioned bundle"):
            v.synthesize(feats, speaker=1, gc=[0.1, 0.2], postfilter=1)
        with pytest.raises(VocoderError, match="needs a mel-conditioned bundle"):
            next(v.stream(feats, speaker=1, gc=[0.1, 0.2], postfilter=1))
    np.save(tmp_path / "f.npy", feats)
    out = tmp_path / "o.wav"
    assert main(["synthesize", str(path), str(tmp_path / "f.npy"), "-o", str(out),
                 "--gc", "0.1,0.2", "--postfilter", "1"]) == 2
    err = capsys.readouterr().err
    assert "needs a mel-conditioned bundle" in err and "Traceback" not in err
    assert not out.exists()
