"""Deterministic English sentences for the built-in corpus, from ``grammar.json``.

A sentence is a template with ``{slot}`` holes filled from word lists; ``{Slot}`` gives
the word capitalised. Everything is drawn from ``random.Random`` seeded with a string,
whose output is fixed for a given seed across Python versions (str seeds hash with
SHA-512), so a seed names the same text everywhere.
"""

from __future__ import annotations

import functools
import json
import random
import re
from importlib import resources

_SLOT = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=1)
def load_grammar() -> dict:
    """The shipped grammar: ``{"templates": [str], "words": {slot: [str]}}``."""
    text = resources.files("vocoder.data").joinpath("grammar.json").read_text("utf-8")
    grammar = json.loads(text)
    for template in grammar["templates"]:
        for slot in _SLOT.findall(template):
            if slot.lower() not in grammar["words"]:
                raise KeyError(f"grammar.json: template {template!r} uses unknown slot {slot!r}")
    return grammar


def make_sentence(seed: int | str, index: int) -> str:
    """The ``index``-th sentence of the stream named by ``seed`` (independent of others)."""
    grammar = load_grammar()
    rng = random.Random(f"vocoder-sentence:{seed}:{index}")
    template = rng.choice(grammar["templates"])

    def fill(match: re.Match) -> str:
        slot = match.group(1)
        word = rng.choice(grammar["words"][slot.lower()])
        return word[:1].upper() + word[1:] if slot[:1].isupper() else word

    return _SLOT.sub(fill, template)


def make_sentences(seed: int | str, count: int, start: int = 0) -> list[str]:
    """``count`` sentences, indices ``start .. start + count - 1`` of the seed's stream."""
    return [make_sentence(seed, i) for i in range(start, start + count)]
