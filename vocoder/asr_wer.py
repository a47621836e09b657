"""Word error rate of speech by PocketSphinx 5, with a grammar of the built-in corpus.

Needs the ``eval`` extra (``pip install -e .[eval]``: pocketsphinx, jiwer). PocketSphinx
ships its US-English acoustic model and CMU dictionary, so nothing is downloaded.

Why a grammar: the bundled open-vocabulary language model transcribes even the eSpeak
reference recordings of this corpus at 80-90 % WER, which cannot tell good audio from bad.
The corpus's sentences come from ``vocoder.data.sentences`` (``grammar.json``: word lists
and templates), so the recogniser is given exactly that language as a JSGF grammar: one
alternative per template, one rule per word list. The eSpeak references then score about
5 % WER, while noise finds no path through the grammar at all (empty transcript, 100 %).
The grammar is a strong prior: a clip only has to pick among 14 templates and the word
lists, so the shipped demo model's noise-excited output, which follows the reference's
timing and roughly its formants, already scores about 46 % (references 3 %, same 8
utterances); the ratio of the two WERs is the number to compare.

Decoder settings (one decoder, built once and reused): PocketSphinx's ``en-us`` acoustic
model and ``cmudict-en-us.dict``, no language model, the grammar as the only search, 16 kHz,
batch cepstral mean normalisation over each whole clip. Words missing from the dictionary
get the pronunciations in ``EXTRA_PRONUNCIATIONS`` (the two names of ``grammar.json``
that cmudict lacks); any other missing word is dropped from the grammar and from the
reference texts, and listed by :func:`make_recognizer`.

Each clip (float, 16 kHz) gets ``PAD_SECONDS`` of silence at both ends, because speech
starting at the first sample is decoded worse, then a Gaussian noise floor of std
``NOISE_FLOOR`` (seeded) everywhere, because digital silence (exact zeros) upsets the
front end's energy and CMN statistics; it is then converted to 16-bit PCM.

Scoring: texts are lower-cased, numbers spelled out as eSpeak's en-us voices say them
(``104`` -> ``one hundred four``), punctuation stripped; errors are jiwer's
substitutions + deletions + insertions, and pooled WER is total errors / total reference
words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
PAD_SECONDS = 0.5
NOISE_FLOOR = 1e-4  # std in float full scale: about 3 LSB of 16-bit PCM
SEARCH_NAME = "corpus"
PIP_HINT = "pip install -e .[eval]"
# cmudict lacks these names of grammar.json; ARPAbet from eSpeak's en-us phonemes
# (pr'Ij@, j'u:sVf), so the grammar keeps every word the corpus speaks.
EXTRA_PRONUNCIATIONS = {"priya": "P R IY Y AH", "yusuf": "Y UW S AH F"}

_SLOT = re.compile(r"\{(\w+)\}")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def missing_packages() -> list[str]:
    """The ``eval`` extra's ASR packages that cannot be imported ([] when all can)."""
    from vocoder.intelligibility import missing_modules

    return missing_modules(("pocketsphinx", "jiwer"))


# -- text ------------------------------------------------------------------------------

def spell_number(n: int) -> str:
    """``n`` (0 <= n < 10**6) in words the way eSpeak's en-us voices read digits: no
    "and" (``104`` -> ``one hundred four``, ``21`` -> ``twenty one``)."""
    if not 0 <= n < 1_000_000:
        raise ValueError(f"spell_number takes 0 <= n < 10**6, got {n}")
    if n >= 1000:
        head, rest = divmod(n, 1000)
        return spell_number(head) + " thousand" + (" " + spell_number(rest) if rest else "")
    if n >= 100:
        head, rest = divmod(n, 100)
        return _ONES[head] + " hundred" + (" " + spell_number(rest) if rest else "")
    if n >= 20:
        tens, rest = divmod(n, 10)
        return _TENS[tens] + (" " + _ONES[rest] if rest else "")
    return _ONES[n]


def normalize_text(text: str, drop: Iterable[str] = ()) -> str:
    """Lower-case words separated by single spaces: numbers spelled out, punctuation
    (hyphens included) removed, the words in ``drop`` left out."""
    def spell(m: re.Match) -> str:
        return spell_number(int(m.group(0))) if len(m.group(0)) <= 6 else m.group(0)

    words = re.findall(r"[a-z0-9']+", re.sub(r"\d+", spell, text.lower()))
    dropped = set(drop)
    return " ".join(w for w in (w.strip("'") for w in words) if w and w not in dropped)


# -- the grammar -----------------------------------------------------------------------

def grammar_vocabulary(grammar: dict) -> set[str]:
    """Every word a sentence of ``grammar`` (``load_grammar()``'s dict) can contain."""
    words: set[str] = set()
    for template in grammar["templates"]:
        words.update(normalize_text(_SLOT.sub(" ", template)).split())
    for options in grammar["words"].values():
        for option in options:
            words.update(normalize_text(option).split())
    return words


def build_jsgf(grammar: dict, drop: Iterable[str] = ()) -> str:
    """JSGF text whose public rule accepts exactly the normalised sentences of ``grammar``
    (words in ``drop`` removed): one alternative per template, one rule per word list."""
    drop = set(drop)

    def phrase(text: str) -> str:
        return normalize_text(text, drop) or "<NULL>"

    rules = [f"<{slot}> = {' | '.join(sorted({phrase(w) for w in options}))};"
             for slot, options in sorted(grammar["words"].items())]
    alternatives = []
    for template in grammar["templates"]:
        # re.split with a group alternates literal text (even) and slot names (odd)
        parts = _SLOT.split(template)
        tokens = [normalize_text(p, drop) if i % 2 == 0 else f"<{p.lower()}>"
                  for i, p in enumerate(parts)]
        alternatives.append("( " + (" ".join(t for t in tokens if t) or "<NULL>") + " )")
    return "\n".join(["#JSGF V1.0;", f"grammar {SEARCH_NAME};", *rules,
                      f"public <sentence> = {' | '.join(alternatives)};", ""])


# -- the decoder -----------------------------------------------------------------------

@dataclass
class Recognizer:
    """A PocketSphinx decoder searching ``jsgf``; ``dropped``: grammar words that had no
    pronunciation (left out of the grammar, and to be left out of references)."""

    decoder: object
    jsgf: str
    vocabulary: frozenset
    dropped: tuple[str, ...]


def make_recognizer(grammar: dict | None = None) -> Recognizer:
    """A decoder for ``grammar`` (default: the shipped ``grammar.json``), settings as in
    the module docstring."""
    from pocketsphinx import Config, Decoder

    from vocoder.data.sentences import load_grammar

    grammar = load_grammar() if grammar is None else grammar
    # live CMN would carry its estimate from one clip into the next, so a reused decoder
    # would transcribe a clip differently depending on what it heard before
    decoder = Decoder(Config(lm=None, samprate=SAMPLE_RATE, cmn="batch", loglevel="FATAL"))
    vocabulary = grammar_vocabulary(grammar)
    for word in sorted(vocabulary & EXTRA_PRONUNCIATIONS.keys()):
        if decoder.lookup_word(word) is None:
            decoder.add_word(word, EXTRA_PRONUNCIATIONS[word], False)
    dropped = tuple(sorted(w for w in vocabulary if decoder.lookup_word(w) is None))
    jsgf = build_jsgf(grammar, dropped)
    decoder.add_jsgf_string(SEARCH_NAME, jsgf)  # also applies the add_word calls
    decoder.activate_search(SEARCH_NAME)
    return Recognizer(decoder, jsgf, frozenset(vocabulary - set(dropped)), dropped)


@functools.lru_cache(maxsize=1)
def shared_recognizer() -> Recognizer:
    """The recogniser of the shipped grammar, built once per process (0.5 s)."""
    return make_recognizer()


def prepare_pcm(audio: np.ndarray, seed: int = 0) -> bytes:
    """Float audio (T,) at 16 kHz -> 16-bit PCM bytes of ``T + 2 * PAD_SECONDS * 16000``
    samples: padded with silence, plus the seeded noise floor, clipped to full scale."""
    pad = np.zeros(int(round(PAD_SECONDS * SAMPLE_RATE)))
    x = np.concatenate([pad, np.asarray(audio, np.float64).reshape(-1), pad])
    x += NOISE_FLOOR * np.random.default_rng(seed).standard_normal(x.size)
    return np.clip(np.round(x * 32768.0), -32768, 32767).astype("<i2").tobytes()


def transcribe(recognizer: Recognizer, audio: np.ndarray, seed: int = 0) -> str:
    """The recogniser's words for float audio (T,) at 16 kHz ("" when the search found
    no path through the grammar, as it does for noise)."""
    dec = recognizer.decoder
    dec.start_utt()
    dec.process_raw(prepare_pcm(audio, seed), full_utt=True)  # whole clip: batch CMN
    dec.end_utt()
    hyp = dec.hyp()
    return normalize_text(hyp.hypstr) if hyp is not None else ""


# -- scoring ---------------------------------------------------------------------------

def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) of two normalised
    texts; ``reference`` must have a word."""
    import jiwer

    if not reference.split():
        raise ValueError("word_errors needs a reference with at least one word")
    if not hypothesis.split():  # all deletions; spares jiwer an empty side (3.x rejects)
        return len(reference.split()), len(reference.split())
    out = jiwer.process_words(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions, len(reference.split())


def pooled_wer(counts: Iterable[tuple[int, int]]) -> float | None:
    """Total errors / total reference words of ``(errors, words)`` pairs (None if no
    words)."""
    counts = list(counts)
    words = sum(w for _, w in counts)
    return sum(e for e, _ in counts) / words if words else None
