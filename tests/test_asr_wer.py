"""vocoder.asr_wer and vocoder.intelligibility with the real PocketSphinx, jiwer, pystoi and
pesq (the ``eval`` extra) on eSpeak renderings of the corpus's own sentences."""

from __future__ import annotations

import numpy as np
import pytest

from vocoder import asr_wer
from vocoder.data.sentences import make_sentences
from vocoder.features import espeak
from vocoder.intelligibility import pesq_wb, stoi_score

SR = 16000
needs_espeak = pytest.mark.skipif(not espeak.is_available(),
                                  reason="libespeak-ng.so.1 missing (apt-get install espeak-ng)")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """[(text, float audio (T,))]: four utterances of the built-in corpus (2 voices)."""
    from vocoder.data import build_espeak_corpus, load_manifest

    root = tmp_path_factory.mktemp("asr_corpus")
    build_espeak_corpus(root, speakers=2, utterances=2, seed=3, progress=False)
    ds = load_manifest(root)
    return [(e.text, ds.load(e)[0].astype(np.float64) / 32768.0) for e in ds.entries]


def speech_like(seconds: float = 2.0) -> np.ndarray:
    """A harmonic tone with a gliding F0 and syllable-rate bursts, (seconds * 16000,)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(120 * (1 + 0.2 * np.sin(2 * np.pi * 0.7 * t))) / SR
    harmonics = sum(np.sin(k * phase) / k for k in range(1, 30))
    return 0.1 * harmonics * np.maximum(0, np.sin(2 * np.pi * 3.5 * t)) ** 2


# -- text and scoring ------------------------------------------------------------------

def test_numbers_are_spelled_as_espeak_says_them():
    assert asr_wer.spell_number(21) == "twenty one"
    assert asr_wer.spell_number(104) == "one hundred four"
    assert asr_wer.spell_number(2019) == "two thousand nineteen"
    assert asr_wer.normalize_text("We saw 21 Apples, near the well-lit 'harbour'!") == \
        "we saw twenty one apples near the well lit harbour"
    assert asr_wer.normalize_text("Zoe met Priya.", drop={"priya"}) == "zoe met"


def test_word_errors_count_substitutions_deletions_insertions():
    assert asr_wer.word_errors("a b c", "a x c d") == (2, 3)
    assert asr_wer.word_errors("a b c", "") == (3, 3)
    assert asr_wer.pooled_wer([(2, 3), (0, 7)]) == pytest.approx(0.2)
    assert asr_wer.pooled_wer([]) is None


# -- the grammar -----------------------------------------------------------------------

def test_grammar_accepts_the_generators_sentences_and_nothing_scrambled():
    rec = asr_wer.shared_recognizer()
    assert rec.dropped == ()  # every word of grammar.json has a pronunciation
    fsg = rec.decoder.parse_jsgf(rec.jsgf)
    for sentence in make_sentences("asr-test", 30):
        words = asr_wer.normalize_text(sentence)
        assert fsg.accept(words), sentence
        assert all(rec.decoder.lookup_word(w) for w in words.split()), sentence
        assert not fsg.accept(" ".join(reversed(words.split()))), sentence
        assert not fsg.accept(words + " apple"), sentence


def test_words_without_pronunciation_are_dropped_from_the_grammar():
    grammar = {"templates": ["The {noun} saw {Name} {time}."],
               "words": {"noun": ["apple", "zorpleflax"], "name": ["Alice", "Yusuf"],
                         "time": ["at noon"]}}
    rec = asr_wer.make_recognizer(grammar)
    assert rec.dropped == ("zorpleflax",)  # yusuf comes from EXTRA_PRONUNCIATIONS
    fsg = rec.decoder.parse_jsgf(rec.jsgf)
    assert fsg.accept("the apple saw yusuf at noon")
    assert fsg.accept("the saw alice at noon")  # as a reference reads with the word dropped
    assert not fsg.accept("the zorpleflax saw alice at noon")


# -- decoding --------------------------------------------------------------------------

def test_prepare_pcm_pads_with_a_faint_seeded_noise_floor():
    x = np.full(1000, 0.5)
    pcm = np.frombuffer(asr_wer.prepare_pcm(x, seed=1), "<i2")
    pad = int(asr_wer.PAD_SECONDS * SR)
    assert pcm.size == 1000 + 2 * pad
    assert np.abs(pcm[pad:-pad].astype(int) - 16384).max() < 30
    edges = np.concatenate([pcm[:pad], pcm[-pad:]]).astype(float)
    assert 1 < edges.std() < 6 and np.count_nonzero(edges) > pad  # no digital silence
    assert asr_wer.prepare_pcm(x, seed=1) == asr_wer.prepare_pcm(x, seed=1)
    assert asr_wer.prepare_pcm(x, seed=1) != asr_wer.prepare_pcm(x, seed=2)


@needs_espeak
def test_espeak_speech_is_recognised_and_noise_is_not(rendered):
    rec = asr_wer.shared_recognizer()
    rng = np.random.default_rng(0)
    speech, white, shaped = [], [], []
    for text, audio in rendered:
        ref = asr_wer.normalize_text(text)
        speech.append(asr_wer.word_errors(ref, asr_wer.transcribe(rec, audio)))
        noise = rng.standard_normal(audio.size)
        white.append(asr_wer.word_errors(ref, asr_wer.transcribe(rec, 0.1 * noise)))
        # noise that follows the speech's loudness, like an untrained vocoder's output
        envelope = np.sqrt(np.convolve(audio**2, np.ones(400) / 400, "same"))
        shaped.append(asr_wer.word_errors(ref, asr_wer.transcribe(rec, envelope * noise)))
    assert asr_wer.pooled_wer(speech) < 0.15, speech
    assert asr_wer.pooled_wer(white) > 0.9, white
    assert asr_wer.pooled_wer(shaped) > 0.9, shaped


@needs_espeak
def test_a_reused_decoder_does_not_remember_earlier_clips(rendered):
    rec = asr_wer.shared_recognizer()
    (_, first), (_, second) = rendered[:2]
    before = asr_wer.transcribe(rec, first)
    asr_wer.transcribe(rec, second)
    asr_wer.transcribe(rec, 0.3 * np.random.default_rng(1).standard_normal(SR))
    assert asr_wer.transcribe(rec, first) == before
    assert asr_wer.transcribe(asr_wer.make_recognizer(), first) == before


# -- STOI and PESQ ---------------------------------------------------------------------

def test_stoi_of_a_signal_against_itself_and_against_noise():
    x = speech_like()
    noise = np.random.default_rng(0).standard_normal(x.size) * x.std()
    assert stoi_score(x, x, SR) == pytest.approx(1.0, abs=1e-6)
    assert stoi_score(x, noise, SR) < 0.6
    assert stoi_score(x, x[:-123], SR) > 0.99  # trimmed to the shorter, not an error
    assert stoi_score(x[:2000], x[:2000], SR) is None  # too short: no placeholder 1e-5


def test_pesq_of_identical_and_of_degraded_signals():
    x = speech_like()
    noise = np.random.default_rng(0).standard_normal(x.size) * x.std()
    assert pesq_wb(x, x) > 4.0
    assert pesq_wb(x, x + 0.3 * noise) < 2.5
    assert pesq_wb(np.zeros(SR), np.zeros(SR)) is None
    with pytest.raises(ValueError, match="16000"):
        pesq_wb(x, x, 22050)


def test_stoi_of_a_clip_shorter_than_one_frame_is_none():
    x = np.random.default_rng(0).standard_normal(240)
    assert stoi_score(x, x, SR) is None
