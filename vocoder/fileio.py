"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left as it was.
    The temporary name keeps the suffix so that libraries that pick a format from it
    (soundfile, numpy) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600), and some writers (safetensors) replace
        # it with another private file: give the result the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def audio_format(path: str | os.PathLike) -> str:
    """The soundfile format ``path``'s suffix names (``.wav`` -> WAV, ``.flac``, ``.ogg``,
    ``.mp3`` ...); a VocoderError for a directory, a missing suffix or one soundfile
    cannot write. Call it before long work, so a bad name fails first."""
    import soundfile as sf

    from vocoder.errors import VocoderError

    path = Path(path)
    if path.is_dir():
        raise VocoderError(f"{path} is a directory; give an audio file name such as "
                           f"{path / 'out.wav'}")
    fmt = path.suffix[1:].upper()
    formats = sf.available_formats()
    if fmt not in formats:
        known = ", ".join(f".{f.lower()}" for f in ("WAV", "FLAC", "OGG", "MP3", "AIFF")
                          if f in formats)
        raise VocoderError(f"{path}: cannot tell an audio format from the suffix "
                           f"{path.suffix or '(none)'}; use one of {known}")
    return fmt


def write_wav_atomic(path: str | os.PathLike, audio, sample_rate: int) -> None:
    """Write float audio in [-1, 1] in the format ``path``'s suffix names
    (:func:`audio_format`): 16-bit PCM where the format has it (WAV, FLAC, AIFF), the
    format's own encoding otherwise (Vorbis, MP3)."""
    import numpy as np
    import soundfile as sf

    fmt = audio_format(path)
    subtype = "PCM_16" if sf.check_format(fmt, "PCM_16") else None
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), audio, sample_rate, subtype=subtype, format=fmt)
