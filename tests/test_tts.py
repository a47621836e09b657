"""`vocoder say`: text -> eSpeak NG -> features -> WaveNet, on a random-weight bundle whose
feature spec and voices are those of the eSpeak corpus."""

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import make_config
from vocoder.bundle import save_bundle
from vocoder.cli import main
from vocoder.errors import VocoderError
from vocoder.export.exporter import export_bundle
from vocoder.features.spec import FeatureSpec
from vocoder.model import WaveNet

espeak = pytest.importorskip("vocoder.features.espeak")
if not espeak.is_available():
    pytest.skip("libespeak-ng.so.1 is missing (apt-get install espeak-ng)",
                allow_module_level=True)


@pytest.fixture(scope="module")
def espeak_bundle(tmp_path_factory):
    from vocoder.features.linguistic import binary_mask, feature_names

    names = feature_names()
    cfg = make_config(cond_channels=len(names), n_speakers=2, upsample_scales=(4, 4, 5))
    spec = FeatureSpec(tuple(names), 80, (0.0,) * len(names), (1.0,) * len(names),
                       tuple(binary_mask()))
    path = tmp_path_factory.mktemp("tts") / "bundle"
    torch.manual_seed(0)
    save_bundle(WaveNet(cfg), cfg, path, feature_spec=spec,
                training={"corpus": {"speakers": ["en-us", "en-us+f2"]}})
    export_bundle(path)
    return path


def test_say_writes_speech_length_audio(espeak_bundle, tmp_path):
    out = tmp_path / "hello.wav"
    assert main(["say", "Hello there.", "--bundle", str(espeak_bundle), "-o", str(out),
                 "--speaker", "1", "-q"]) == 0
    audio, sr = sf.read(out)
    assert sr == 16000 and 0.3 < len(audio) / sr < 3.0
    assert len(audio) % 80 == 0


def test_pitch_shift_moves_the_log_f0_feature(espeak_bundle):
    from vocoder.api import Vocoder
    from vocoder.features.linguistic import feature_names
    from vocoder.tts import text_features

    voc = Vocoder.load(espeak_bundle)
    base = text_features(voc, "A test.", 0, 0.0)
    up = text_features(voc, "A test.", 0, 3.0)
    k = feature_names().index("log_f0")
    # eSpeak's rendering (and so the extracted F0) drifts by ~1% between calls
    shift = np.median(up[:, k] - base[:, k])
    assert abs(shift - 3 * np.log(2) / 12) < 0.04
    with pytest.raises(VocoderError, match="unknown speaker 5"):
        text_features(voc, "A test.", 5)
    with pytest.raises(VocoderError, match="empty"):
        text_features(voc, "   ", 0)


def test_bundle_without_voices_is_refused(tmp_path, capsys):
    cfg = make_config(cond_channels=3)
    save_bundle(WaveNet(cfg), cfg, tmp_path)
    export_bundle(tmp_path)
    assert main(["say", "Hi.", "--bundle", str(tmp_path), "-o", str(tmp_path / "x.wav")]) == 2
    assert "no eSpeak voices" in capsys.readouterr().err
