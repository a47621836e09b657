"""Text -> eSpeak -> features: shapes, framing, alignment with eSpeak events, pitch shift."""

import math

import numpy as np
import pytest

from vocoder.features import espeak, f0, frontend
from vocoder.features import linguistic as L

pytestmark = [
    pytest.mark.skipif(not espeak.is_available(),
                       reason="libespeak-ng.so.1 missing (apt-get install espeak-ng)"),
    pytest.mark.skipif(not f0.pyworld_available(), reason="pyworld missing (pip install pyworld)"),
]
SR, HOP = 16000, 80


@pytest.fixture(scope="module")
def utt():
    return frontend.synthesize_utterance("Hello world, good morning.", "en-us+m3", SR, HOP)


def test_shapes_and_exact_framing(utt):
    n_frames = utt.features.shape[0]
    assert utt.features.shape == (n_frames, L.feature_dim())
    assert utt.features.dtype == np.float32 and utt.audio.dtype == np.int16
    assert n_frames * HOP == utt.audio.size
    # Resampled by the rate ratio, then padded by less than one frame.
    expected = utt.synthesis.audio.size * SR / espeak.ENGINE_RATE
    assert 0 <= utt.audio.size - expected < HOP + 1
    assert np.all(np.isfinite(utt.features))


def test_phone_boundaries_in_frames_match_events(utt):
    cur_cols = [i for i, n in enumerate(L.feature_names()) if n.startswith("cur=")]
    cur = utt.features[:, cur_cols].argmax(1)
    centres = (np.arange(cur.size) + 0.5) * HOP
    for p in utt.synthesis.phones:
        start = p.start * SR / espeak.ENGINE_RATE
        end = p.end * SR / espeak.ENGINE_RATE
        inside = (centres >= start) & (centres < end)
        assert np.all(cur[inside] == L.phone_slot(p.name)), p
        if inside.any():  # the first frame of the phone is the first centre past its start
            assert np.argmax(inside) == math.ceil(start / HOP - 0.5)


def test_speech_is_voiced_and_pitch_is_plausible(utt):
    vuv = utt.features[:, -1]
    log_f0 = utt.features[:, -2]
    assert 0.3 < vuv.mean() < 0.95
    assert vuv[0] == 0  # leading silence
    hz = np.exp(log_f0[vuv > 0])
    assert 60 < np.median(hz) < 250


def test_text_to_features_and_pitch_shift():
    base = frontend.text_to_features("Good morning.", "en-us", SR, HOP)
    up = frontend.text_to_features("Good morning.", "en-us", SR, HOP,
                                   pitch_shift_semitones=12.0)
    assert base.shape[1] == up.shape[1] == L.feature_dim()
    # eSpeak's timing varies by a few samples between calls (see test_espeak), so the
    # exact offset is checked below on fixed input; here only the level moves an octave.
    assert abs(base.shape[0] - up.shape[0]) <= 0.05 * base.shape[0]
    assert abs(np.median(up[:, -2]) - np.median(base[:, -2]) - np.log(2)) < 0.05


def test_pitch_shift_adds_exact_log_offset(monkeypatch):
    fixed = frontend.synthesize_utterance("Good morning.", "en-us", SR, HOP)
    monkeypatch.setattr(frontend, "synthesize_utterance", lambda *a, **k: frontend.Utterance(
        fixed.audio, fixed.features.copy(), fixed.synthesis))
    base = frontend.text_to_features("Good morning.", "en-us", SR, HOP)
    shifted = frontend.text_to_features("Good morning.", "en-us", SR, HOP,
                                        pitch_shift_semitones=-3.0)
    np.testing.assert_allclose(shifted[:, -2] - base[:, -2], -3 * np.log(2) / 12, atol=1e-6)
    assert np.array_equal(shifted[:, :-2], base[:, :-2])
    assert np.array_equal(shifted[:, -1], base[:, -1])
