"""The eSpeak NG binding: audio, phone timing, stress, words, errors, thread safety."""

import threading

import numpy as np
import pytest

from vocoder.errors import VocoderError
from vocoder.features import espeak

needs_espeak = pytest.mark.skipif(not espeak.is_available(),
                                  reason="libespeak-ng.so.1 missing (apt-get install espeak-ng)")


@needs_espeak
def test_synthesize_gives_int16_audio_and_tiling_phones():
    syn = espeak.synthesize("Hello world.", "en-us")
    assert syn.sample_rate == espeak.ENGINE_RATE == 22050
    assert syn.audio.dtype == np.int16 and syn.audio.ndim == 1
    assert syn.audio.size > 0.3 * syn.sample_rate  # two words take well over 0.3 s
    assert np.abs(syn.audio).max() > 1000  # not silence
    phones = syn.phones
    assert phones[0].start == 0 and phones[-1].end == syn.audio.size
    for a, b in zip(phones, phones[1:]):
        assert a.end == b.start and a.end > a.start
    names = [p.name for p in phones if not p.is_pause]
    assert names == ["h", "@", "l", "oU", "w", "3:", "l", "d"]
    assert syn.alignment[1] == ("h", phones[1].start, phones[1].end)


@needs_espeak
def test_stress_and_words_follow_the_phoneme_string():
    syn = espeak.synthesize("Hello world.", "en-us")
    assert "'" in syn.phonemes  # eSpeak marks primary stress
    by_name = {p.name: p for p in syn.phones if not p.is_pause}
    assert by_name["oU"].stress == espeak.STRESS_PRIMARY
    assert by_name["3:"].stress == espeak.STRESS_PRIMARY
    assert by_name["h"].stress == espeak.STRESS_NONE
    assert by_name["@"].stress == espeak.STRESS_NONE
    words = [p.word for p in syn.phones if not p.is_pause]
    assert words == [0, 0, 0, 0, 1, 1, 1, 1]
    assert all(p.word == -1 for p in syn.phones if p.is_pause)


@needs_espeak
def test_variants_are_different_speakers():
    a = espeak.synthesize("Good morning.", "en-us")
    b = espeak.synthesize("Good morning.", "en-us+f2")
    assert [p.name for p in a.phones] == [p.name for p in b.phones]
    n = min(a.audio.size, b.audio.size)
    assert not np.array_equal(a.audio[:n], b.audio[:n])


@needs_espeak
def test_synthesis_is_stable_and_rate_changes_duration():
    # eSpeak carries pitch-flutter/noise state between calls, so audio is not
    # bit-identical within a process (the corpus builder uses a fresh worker for that);
    # phones and durations are.
    a = espeak.synthesize("The quick brown fox.", "en-us", rate_wpm=175)
    b = espeak.synthesize("The quick brown fox.", "en-us", rate_wpm=175)
    assert [p.name for p in a.phones] == [p.name for p in b.phones]
    assert abs(a.audio.size - b.audio.size) < 0.05 * a.audio.size
    slow = espeak.synthesize("The quick brown fox.", "en-us", rate_wpm=100)
    assert slow.audio.size > 1.3 * a.audio.size


@needs_espeak
def test_concurrent_calls_are_serialised():
    texts = ["One two three.", "Four five six seven."]
    expected = [espeak.synthesize(t, "en-us") for t in texts]
    results: dict[int, espeak.Synthesis] = {}

    def run(i):
        results[i] = espeak.synthesize(texts[i % 2], "en-us")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2, 3]
    for i, syn in results.items():
        want = expected[i % 2]
        # Interleaved callbacks would mix the two texts' phones and audio.
        assert [p.name for p in syn.phones] == [p.name for p in want.phones]
        assert abs(syn.audio.size - want.audio.size) < 0.05 * want.audio.size
        assert syn.phones[-1].end == syn.audio.size


@needs_espeak
@pytest.mark.parametrize("text,voice,rate,match", [
    ("hello", "no-such-voice", 175, "no voice"),
    ("   ", "en-us", 175, "non-empty"),
    ("hello", "en-us", 10, "rate_wpm"),
])
def test_bad_input_is_a_clear_error(text, voice, rate, match):
    with pytest.raises(VocoderError, match=match):
        espeak.synthesize(text, voice, rate_wpm=rate)


def test_missing_library_names_the_debian_package(monkeypatch):
    monkeypatch.setattr(espeak, "_LIB_NAMES", ("libdefinitely-not-espeak.so.9",))
    with pytest.raises(VocoderError, match="espeak-ng"):
        espeak._load_library()
