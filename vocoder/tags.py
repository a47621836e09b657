"""Tag names and the global-conditioning vector ``gc`` they stand for.

A tag-conditioned model has ``gc_channels`` = the number of tags; its bundle lists the
tag names in order (``config.json`` "tags"), and the vector of a clip is multi-hot: 1.0
where the clip has the tag, 0.0 elsewhere. The dataset's ``corpus.json`` names the same
tags, and each manifest row lists its own (:mod:`vocoder.data.corpus`).

Tag names are what a user types (``--tags piano,fast``): no commas, no whitespace.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from vocoder.errors import VocoderError

_NAME = re.compile(r"^[^\s,]+$")


def check_tag_names(names, where: str) -> tuple[str, ...]:
    """``names`` as a tuple of distinct tag names; a VocoderError prefixed by ``where``
    for anything else (not a list, a non-string, an empty or comma/space-holding name)."""
    if not isinstance(names, (list, tuple)):
        raise VocoderError(f"{where}: tags must be a list of tag names, got "
                           f"{type(names).__name__}")
    for name in names:
        if not isinstance(name, str) or not _NAME.match(name):
            raise VocoderError(f"{where}: tag names must be non-empty strings without commas "
                               f"or spaces, got {name!r}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise VocoderError(f"{where}: tag {dup[0]!r} is listed twice")
    return tuple(names)


def check_tag_groups(groups, tags: Sequence[str], where: str) -> tuple[tuple[str, ...], ...]:
    """Validate ``tag_groups``: lists of known tags, each tag in at most one group, every
    group at least two tags (a group's tags exclude each other, e.g. fast/slow)."""
    if not isinstance(groups, (list, tuple)):
        raise VocoderError(f"{where}: tag_groups must be a list of lists of tag names")
    seen: set[str] = set()
    out = []
    for group in groups:
        group = check_tag_names(group, where)
        if len(group) < 2:
            raise VocoderError(f"{where}: a tag group needs at least two tags, got "
                               f"{list(group)}")
        for name in group:
            if name not in tags:
                raise VocoderError(f"{where}: tag group member {name!r} is not one of the "
                                   f"tags {list(tags)}")
            if name in seen:
                raise VocoderError(f"{where}: tag {name!r} is in two tag groups")
            seen.add(name)
        out.append(group)
    return tuple(out)


def multi_hot(names: Sequence[str], known: Sequence[str], who: str = "") -> np.ndarray:
    """(len(known),) float32: 1.0 at each of ``names``' positions in ``known``.

    An unknown or repeated name is a VocoderError (prefixed with ``who``) that lists the
    known tags.
    """
    index = {n: i for i, n in enumerate(known)}
    vec = np.zeros(len(known), np.float32)
    for name in names:
        if name not in index:
            raise VocoderError(f"{who}unknown tag {name!r}; the known tags are "
                               f"{', '.join(known) or '(none)'}")
        if vec[index[name]]:
            raise VocoderError(f"{who}tag {name!r} is given twice")
        vec[index[name]] = 1.0
    return vec


def parse_tag_list(text: str) -> list[str]:
    """``"piano,fast"`` -> ``["piano", "fast"]`` (spaces around names ignored; an empty
    string is no tag at all)."""
    names = [t.strip() for t in text.split(",")]
    return [] if names == [""] else names


def tag_vector(known: Sequence[str], gc_channels: int, tags: Sequence[str]) -> np.ndarray:
    """The gc vector of a model whose bundle names the tags ``known``, for ``tags``."""
    if not gc_channels:
        raise VocoderError("this model takes no tags (gc_channels=0)")
    if not known:
        raise VocoderError(f"this model's bundle names no tags for its {gc_channels} global "
                           f"conditioning values; give the vector itself (--gc) instead")
    if "" in tags:
        raise VocoderError(f"empty tag name in {list(tags)}; the known tags are "
                           f"{', '.join(known)}")
    return multi_hot(tags, known)


def parse_gc(text: str, known: Sequence[str], gc_channels: int) -> np.ndarray:
    """``"1,0,0.5"`` -> a float32 vector of exactly ``gc_channels`` finite values."""
    if not gc_channels:
        raise VocoderError("this model takes no global vector (gc_channels=0)")
    what = f"{gc_channels} values" + (f" (one per tag: {', '.join(known)})" if known else "")
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise VocoderError(f"--gc takes comma-separated numbers, {what}; got {text!r}") \
            from None
    if len(values) != gc_channels:
        raise VocoderError(f"--gc has {len(values)} values, this model needs {what}")
    if not all(math.isfinite(v) for v in values):
        raise VocoderError(f"--gc values must be finite numbers, got {text!r}")
    return np.asarray(values, np.float32)


def global_vector(known: Sequence[str], gc_channels: int, tags: str | None,
                  gc: str | None, from_file=None) -> np.ndarray | None:
    """The gc vector for synthesis from the command line's ``--tags`` or ``--gc`` text
    (at most one), else the features file's ``gc``; a VocoderError saying what to pass
    when a tag-conditioned model gets none."""
    if not gc_channels:
        if tags is not None or gc is not None:
            raise VocoderError(f"this model takes no {'tags' if tags is not None else 'gc'}"
                               f" (it has no global conditioning vector, gc_channels=0)")
        return from_file
    if tags is not None:
        return tag_vector(known, gc_channels, parse_tag_list(tags))
    if gc is not None:
        return parse_gc(gc, known, gc_channels)
    if from_file is not None:
        return from_file
    if known:
        raise VocoderError(f"this model is conditioned on tags: pass --tags NAME[,NAME...] "
                           f"(known: {', '.join(known)}) or --gc with {gc_channels} values")
    raise VocoderError(f"this model takes a global conditioning vector: pass --gc with "
                       f"{gc_channels} values")
