"""The tag classifier: its features on known signals, and its accuracy on real clips."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from tests.music import needs_fluidsynth
from vocoder.data import load_manifest
from vocoder.errors import VocoderError
from vocoder.tag_classifier import FEATURE_NAMES, TagClassifier, clip_features, note_rate

SR = 16000


def melody(rate: float, seconds: float = 3.0, wave: str = "sine", seed: int = 0
           ) -> np.ndarray:
    """Notes of a random major-scale melody, ``rate`` per second, each with a short
    attack and decay."""
    rng = np.random.default_rng(seed)
    n_notes = int(seconds * rate)
    per = int(SR / rate)
    t = np.arange(per) / SR
    env = np.minimum(1.0, t / 0.01) * np.exp(-3 * t)
    out, last = [], None
    for _ in range(n_notes):
        step = rng.choice([k for k in (0, 2, 4, 5, 7, 9, 11) if k != last])
        last = step
        f = 220 * 2 ** (step / 12)
        phase = 2 * np.pi * f * t
        tone = np.sin(phase) if wave == "sine" else np.sign(np.sin(phase)) * 0.5
        out.append(0.5 * env * tone)
    return np.concatenate(out)


@pytest.mark.parametrize("rate", [2.0, 3.0, 5.0, 7.0])
def test_note_rate_counts_notes(rate):
    assert note_rate(melody(rate), SR) == pytest.approx(rate, rel=0.25)


def test_features_are_finite_for_any_clip():
    for audio in (np.zeros(100), np.zeros(SR), melody(3.0)[:50], melody(4.0)):
        f = clip_features(audio, SR)
        assert f.shape == (len(FEATURE_NAMES),) and np.all(np.isfinite(f))


def test_classifier_separates_timbre_and_rate():
    clips, tags = [], []
    for seed in range(12):
        for wave in ("sine", "square"):
            for rate, speed in ((2.0, "slow"), (6.0, "fast")):
                clips.append(melody(rate, 2.0, wave, seed))
                tags.append([wave, speed])
    names = ["sine", "square", "fast", "slow"]
    groups = [["sine", "square"], ["fast", "slow"]]
    train = [i for i in range(len(clips)) if i // 4 < 9]  # melodies of seeds 0..8
    test = [i for i in range(len(clips)) if i // 4 >= 9]
    clf = TagClassifier.fit([clips[i] for i in train], [tags[i] for i in train], names,
                            groups, SR)
    assert clf.groups == (("sine", "square"), ("fast", "slow"))
    acc = clf.accuracy([clf.predict(clips[i]) for i in test], [tags[i] for i in test])
    assert set(acc) == set(names)
    for tag, a in acc.items():
        assert a["chance"] == 0.5 and a["accuracy"] >= 0.9, (tag, a)


def test_tag_outside_groups_is_its_own_yes_or_no():
    clips = [melody(3.0, 1.0, "square" if k % 2 else "sine", k) for k in range(8)]
    tags = [["buzz"] if k % 2 else [] for k in range(8)]
    clf = TagClassifier.fit(clips, tags, ["buzz"], [], SR)
    assert clf.classes == (("buzz", None),) and clf.chance("buzz") == 0.5
    assert clf.predict(melody(3.0, 1.0, "square", 99)) == ["buzz"]
    assert clf.predict(melody(3.0, 1.0, "sine", 99)) == []


def test_accuracy_counts_per_tag():
    clf = TagClassifier.fit([melody(2.0, 1.0), melody(6.0, 1.0)], [["slow"], ["fast"]],
                            ["fast", "slow"], [["fast", "slow"]], SR)
    acc = clf.accuracy([["fast"], ["fast"], ["slow"]], [["fast"], ["slow"], ["slow"]])
    assert acc["fast"] == {"n": 1, "correct": 1, "accuracy": 1.0, "chance": 0.5}
    assert acc["slow"]["n"] == 2 and acc["slow"]["accuracy"] == 0.5


def test_a_tag_without_training_clips_is_an_error():
    with pytest.raises(VocoderError, match="no training clip has the tag 'fast'"):
        TagClassifier.fit([melody(2.0, 1.0)], [["slow"]], ["fast", "slow"],
                          [["fast", "slow"]], SR)


@needs_fluidsynth
def test_classifier_beats_chance_on_real_music(music_corpus):
    ds = load_manifest(music_corpus)
    train, test = ds.split("train"), ds.split("test")

    def read(e):
        return sf.read(str(e.wav), dtype="float32")[0]

    clf = TagClassifier.fit([read(e) for e in train], [e.tags for e in train], ds.tags,
                            ds.tag_groups, ds.sample_rate)
    acc = clf.accuracy([clf.predict(read(e)) for e in test], [e.tags for e in test])
    family = np.mean([acc[t]["accuracy"] for t in ds.tag_groups[0]])
    tempo = np.mean([acc[t]["accuracy"] for t in ds.tag_groups[1]])
    # Chance is 1/5 for the family and 1/2 for the tempo.
    assert family >= 0.5 and tempo >= 0.65, acc
