"""Datasets on disk: the built-in eSpeak and music corpora, user manifests, and the shared
format.

See ``vocoder.data.corpus`` for the format. The public entry points are re-exported here.
"""

from vocoder.data.corpus import (
    Dataset,
    Entry,
    build_espeak_corpus,
    build_features_for_manifest,
    load_manifest,
    read_manifest,
)
from vocoder.data.music import build_music_corpus

__all__ = ["Dataset", "Entry", "build_espeak_corpus", "build_features_for_manifest",
           "build_music_corpus", "load_manifest", "read_manifest"]
