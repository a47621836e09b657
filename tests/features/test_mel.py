"""Mel analysis: every preset equals its library reference, frames sit where documented,
configs round-trip through the feature spec."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from vocoder.errors import VocoderError
from vocoder.features import analysis, mel
from vocoder.features.spec import FeatureSpec

WAV = Path(__file__).parent / "data" / "arctic_a0009.wav"
TOL = 1e-4  # on log values


def _speech(rate: int) -> np.ndarray:
    """The arctic sentence at ``rate`` (soxr), with digital silence after it, where the
    clamp decides every band."""
    import soxr

    x, sr = sf.read(WAV, dtype="float64")
    return np.concatenate([soxr.resample(x, sr, rate, quality="HQ"), np.zeros(rate // 5)])


def _hifigan_reference(y, n_fft, num_mels, sampling_rate, hop_size, win_size, fmin, fmax):
    """HiFi-GAN's ``meldataset.mel_spectrogram`` (torch.stft + librosa's filters),
    transcribed; in float64, since float32 rounding alone moves quiet bands by more than
    the tolerance."""
    import torch

    mel_basis = torch.from_numpy(librosa.filters.mel(sr=sampling_rate, n_fft=n_fft,
                                                     n_mels=num_mels, fmin=fmin, fmax=fmax))
    window = torch.hann_window(win_size, dtype=torch.float64)
    y = torch.from_numpy(y)[None]
    pad = int((n_fft - hop_size) / 2)
    y = torch.nn.functional.pad(y.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    spec = torch.stft(y, n_fft, hop_length=hop_size, win_length=win_size, window=window,
                      center=False, pad_mode="reflect", normalized=False, onesided=True,
                      return_complex=True)
    spec = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
    spec = torch.matmul(mel_basis.double(), spec)
    return torch.log(torch.clamp(spec, min=1e-5))[0].numpy()


def _librosa_same(y, pad, eps, **kw):
    """librosa's melspectrogram on HiFi-GAN's framing: reflect padding, no centring,
    sqrt(|X|^2 + eps)."""
    stft = librosa.stft(np.pad(y, pad, mode="reflect"), n_fft=kw["n_fft"],
                        hop_length=kw.pop("hop_length"), win_length=kw.pop("win_length"),
                        window="hann", center=False)
    return librosa.feature.melspectrogram(S=np.sqrt(np.abs(stft) ** 2 + eps), **kw)


# Each reference spells the convention out with literal values, so a wrong preset field
# fails here rather than being compared with itself.
REFERENCES = {
    "hifigan": lambda y: np.log(np.maximum(_librosa_same(
        y, 384, 1e-9, sr=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
        fmin=0, fmax=8000, htk=False, norm="slaney"), 1e-5)),
    "tacotron2": lambda y: np.log(np.maximum(librosa.feature.melspectrogram(
        y=y, sr=22050, n_fft=1024, hop_length=256, win_length=1024, window="hann",
        center=True, pad_mode="reflect", power=1.0, n_mels=80, fmin=0, fmax=8000,
        htk=False, norm="slaney"), 1e-5)),
    # Vocos: torchaudio's MelSpectrogram defaults (HTK scale, no norm, up to Nyquist)
    "vocos": lambda y: np.log(np.maximum(librosa.feature.melspectrogram(
        y=y, sr=24000, n_fft=1024, hop_length=256, center=True, pad_mode="reflect",
        power=1.0, n_mels=100, fmin=0, fmax=12000, htk=True, norm=None), 1e-7)),
    # ParallelWaveGAN's logmelfilterbank, transcribed
    "parallelwavegan": lambda y: np.log10(np.maximum(1e-10, np.dot(
        np.abs(librosa.stft(y, n_fft=1024, hop_length=256, win_length=None, window="hann",
                            pad_mode="reflect")).T,
        librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=80, fmax=7600).T)).T),
    "hifigan-16k": lambda y: np.log(np.maximum(_librosa_same(
        y, 412, 1e-9, sr=16000, n_fft=1024, hop_length=200, win_length=800, n_mels=80,
        fmin=0, fmax=8000, htk=False, norm="slaney"), 1e-5)),
}


def test_every_preset_has_a_reference():
    assert set(REFERENCES) == set(mel.PRESETS)


@pytest.mark.parametrize("name", sorted(mel.PRESETS))
def test_preset_equals_library_reference(name):
    cfg = mel.PRESETS[name]
    y = _speech(cfg.sample_rate)
    got = mel.log_mel(y, cfg)
    want = REFERENCES[name](y)
    assert got.shape == want.shape == (cfg.n_mels, got.shape[1])
    assert got.dtype == np.float32
    assert np.abs(got - want).max() < TOL
    # the silence is at the clamp, the speech far above it
    floor = np.log(cfg.clamp) if cfg.log == "ln" else np.log10(cfg.clamp)
    assert np.isclose(got[:, -3:], floor, atol=TOL).all()
    assert cfg.log_floor == pytest.approx(floor)
    assert got.max() > floor + 5


@pytest.mark.parametrize("name", ["hifigan", "hifigan-16k"])
def test_same_padding_equals_hifigan_code(name):
    cfg = mel.PRESETS[name]
    y = _speech(cfg.sample_rate)
    want = _hifigan_reference(y, cfg.n_fft, cfg.n_mels, cfg.sample_rate, cfg.hop_length,
                              cfg.win_length, cfg.fmin, cfg.fmax)
    assert np.abs(mel.log_mel(y, cfg) - want).max() < TOL


def test_int16_audio_is_scaled():
    cfg = mel.PRESETS["hifigan-16k"]
    y = _speech(16000)
    i16 = np.round(y * 32767).astype(np.int16)
    assert np.abs(mel.log_mel(i16, cfg) - mel.log_mel(i16 / 32768.0, cfg)).max() < 1e-6


@pytest.mark.parametrize("name", sorted(mel.PRESETS))
def test_frame_count(name):
    cfg = mel.PRESETS[name]
    hop = cfg.hop_length
    for n in (hop * 7, hop * 7 + 1, hop * 7 - 1, 1):
        y = np.random.default_rng(n).standard_normal(n) * 0.1
        t = mel.n_frames(n, hop)
        assert t == max(1, -(-n // hop))
        assert mel.mel_frames(y, cfg).shape == (cfg.n_mels, t)
    whole = np.random.default_rng(0).standard_normal(hop * 7)
    assert mel.log_mel(whole, cfg).shape[1] == 7 + (cfg.padding == "center")


def test_same_padding_centres_frame_i_on_its_samples():
    """An impulse in the middle of samples [k*hop, (k+1)*hop) peaks in frame k, and the
    frames on either side see it equally."""
    cfg = mel.PRESETS["hifigan-16k"]
    hop, k = cfg.hop_length, 9
    y = np.zeros(hop * 20)
    y[k * hop + hop // 2] = 1.0
    energy = np.exp(mel.mel_frames(y, cfg)).sum(0)
    assert int(np.argmax(energy)) == k
    assert np.isclose(energy[k - 1], energy[k + 1], rtol=1e-4)


def test_mel_frames_are_the_zero_padded_audio():
    cfg = mel.PRESETS["vocos"]
    y = np.random.default_rng(1).standard_normal(cfg.hop_length * 5 + 17) * 0.1
    padded = np.pad(y, (0, cfg.hop_length * 6 - y.size))
    assert np.array_equal(mel.mel_frames(y, cfg), mel.log_mel(padded, cfg)[:, :6])


def test_preset_changes_and_errors():
    base = mel.PRESETS["hifigan"]
    assert mel.preset("hifigan") is base
    same = mel.preset("hifigan", sample_rate=22050)
    assert same is base
    c = mel.preset("hifigan", sample_rate=16000, hop_length=200)
    assert (c.sample_rate, c.hop_length, c.n_mels) == (16000, 200, 80)
    assert "hifigan" in c.name and "hop_length=200" in c.name
    assert c.differences(base) == ["sample_rate", "hop_length"]
    assert c == base.replace(sample_rate=16000, hop_length=200, name="other")  # name ignored
    with pytest.raises(VocoderError, match="unknown mel preset 'hifi'.*hifigan, tacotron2"):
        mel.preset("hifi")
    with pytest.raises(VocoderError, match="unknown mel config fields \\['bands'\\]"):
        mel.preset("vocos", bands=80)
    with pytest.raises(VocoderError, match="fmax"):
        mel.preset("hifigan", sample_rate=8000)  # fmax 8000 > Nyquist
    with pytest.raises(VocoderError, match="win_length"):
        mel.preset("hifigan", win_length=2048)
    with pytest.raises(VocoderError, match="n_mels must be an int"):
        mel.preset("hifigan", n_mels=80.0)
    with pytest.raises(VocoderError, match="padding"):
        mel.preset("hifigan", padding="valid")


def test_config_round_trips_and_parses_values():
    for cfg in mel.PRESETS.values():
        back = mel.MelConfig.from_dict(cfg.to_dict())
        assert back == cfg and back.name == cfg.name
    assert mel.resolve("vocos") is mel.PRESETS["vocos"]
    assert mel.resolve(mel.PRESETS["vocos"].to_dict()) == mel.PRESETS["vocos"]
    with pytest.raises(VocoderError, match="unknown mel config keys"):
        mel.MelConfig.from_dict({**mel.PRESETS["vocos"].to_dict(), "bands": 3})
    with pytest.raises(VocoderError, match="^mel config: need 0 <= fmin < fmax"):
        mel.MelConfig.from_dict({**mel.PRESETS["vocos"].to_dict(), "fmax": 20000.0})
    with pytest.raises(VocoderError, match="missing 1 required .* 'n_mels'"):
        mel.MelConfig.from_dict({k: v for k, v in mel.PRESETS["vocos"].to_dict().items()
                                 if k != "n_mels"})
    assert [mel.parse_value(v) for v in ("16000", "1e-5", "null", "htk", "true")] == \
        [16000, 1e-5, None, "htk", True]


def test_feature_spec_stores_the_mel_config():
    cfg = mel.PRESETS["hifigan-16k"]
    names = analysis.feature_names(cfg, f0=True)
    frames = [np.random.default_rng(0).standard_normal((30, 82))]
    spec = FeatureSpec.fit(names, 200, frames, analysis.binary_mask(cfg, True), mel=cfg)
    d = spec.to_dict()
    assert d["mel"]["n_mels"] == 80 and d["mel"]["name"] == "hifigan-16k"
    back = FeatureSpec.from_dict(d)
    assert back.mel == cfg and back == spec and back.matches(spec)
    assert not spec.matches(FeatureSpec.fit(names, 200, frames, mel=None))
    old = {k: v for k, v in d.items() if k != "mel"}  # a spec from before mels
    assert FeatureSpec.from_dict(old).mel is None
    assert "mel" not in FeatureSpec.from_dict(old).to_dict()
    with pytest.raises(VocoderError, match="hop 256 but its mel analysis has hop 200"):
        FeatureSpec(tuple(names), 256, (0.0,) * 82, (1.0,) * 82, mel=cfg)
    with pytest.raises(VocoderError, match="cannot hold 80 mel bands"):
        FeatureSpec(("a",), 200, (0.0,), (1.0,), mel=cfg)


def test_frame_features_with_and_without_f0():
    cfg = mel.PRESETS["hifigan-16k"]
    y = _speech(16000)[:16000]
    plain = analysis.frame_features(y, cfg)
    assert plain.shape == (80, 80) and plain.dtype == np.float32  # 1 s: 80 frames
    with_f0 = analysis.frame_features(y, cfg, f0=True)
    assert with_f0.shape == (80, 82)
    assert np.array_equal(with_f0[:, :80], plain)
    assert set(np.unique(with_f0[:, 81])) <= {0.0, 1.0} and with_f0[:, 81].any()
    assert analysis.reads_f0(analysis.feature_names(cfg, True), cfg)
    assert not analysis.reads_f0(analysis.feature_names(cfg, False), cfg)
    with pytest.raises(VocoderError, match="mel features must be named"):
        analysis.reads_f0(["a"] * 80, cfg)
    with pytest.raises(VocoderError, match="mono"):
        mel.log_mel(np.zeros((2, 100)), cfg)
    with pytest.raises(VocoderError, match="NaN"):
        mel.log_mel(np.full(500, np.nan), cfg)

