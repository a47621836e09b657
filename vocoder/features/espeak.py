"""A ctypes binding to eSpeak NG: text -> int16 audio + a timed, stressed phone list.

eSpeak NG keeps global state (one voice, one callback), so every call into the library
holds ``_LOCK``; concurrent callers are serialised, not interleaved.

How the pieces are obtained:

* audio and timing: ``espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, NULL,
  PHONEME_EVENTS | DONT_EXIT)`` then ``espeak_Synth``; the synth callback receives audio
  chunks and events. An ``espeakEVENT_PHONEME`` (type 7) event carries the phoneme
  mnemonic in ``id.string`` and its first sample in ``sample`` (at ``ENGINE_RATE``,
  counted from the start of the ``espeak_Synth`` call). A phone ends where the next
  one starts; the last ends at the end of the audio.
* stress: phoneme events carry no stress, so the same text is also run through
  ``espeak_TextToPhonemes`` (ASCII mnemonics, where eSpeak writes ``'`` before a
  primary-stressed and ``,`` before a secondary-stressed vowel). That string is
  tokenised with the event phone names and aligned to the event sequence
  (``difflib``); an event phone matched to a token preceded by a mark gets that stress,
  any other phone gets 0. Unmatched phones (rare: sentence-level rules differ between
  the two paths) are simply unstressed.
* words: every phoneme event carries the text position of its word, so consecutive
  non-pause phones with the same text position form a word.

Repeatability: eSpeak keeps internal state between calls (pitch-flutter phase, the
noise generator), so the same text can come out a few samples longer or shorter later
in the same process; phones and stress do not change. A fresh process gives the same
output for the same sequence of calls, which is how the corpus builder stays
deterministic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import difflib
import threading
from dataclasses import dataclass

import numpy as np

from vocoder.errors import VocoderError

ENGINE_RATE = 22050
"""eSpeak NG's output sample rate (Hz); checked against ``espeak_Initialize``."""

PAUSE = "_"
"""Name given to every pause phone (eSpeak's ``_``, ``_:``, ``_!`` ...) and to leading silence."""

STRESS_NONE, STRESS_SECONDARY, STRESS_PRIMARY = 0, 1, 2

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000  # without it, missing espeak-ng-data calls exit() on our process
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_PARAM_RATE = 1
_LIB_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "espeak-ng")
_INSTALL_HINT = ("install the Debian/Ubuntu package 'espeak-ng' "
                 "(apt-get install espeak-ng), which provides libespeak-ng.so.1")

_LOCK = threading.RLock()


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    # Mirrors espeak_EVENT in speak_lib.h (eSpeak NG 1.49 - 1.52).
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phone:
    """One aligned phone.

    ``start``/``end`` are sample indices at ``ENGINE_RATE`` (end exclusive, end > start).
    ``stress`` is ``STRESS_NONE``/``STRESS_SECONDARY``/``STRESS_PRIMARY``. ``word`` is the
    0-based index of the word the phone belongs to, or -1 for pauses.
    """

    name: str
    start: int
    end: int
    stress: int = STRESS_NONE
    word: int = -1

    @property
    def is_pause(self) -> bool:
        return self.name == PAUSE


@dataclass(frozen=True)
class Synthesis:
    """eSpeak's output for one text.

    ``audio``: int16 (N,) at ``sample_rate`` (= ``ENGINE_RATE``). ``phones`` tile
    [0, N) without gaps. ``phonemes``: eSpeak's ASCII phoneme string with stress marks.
    """

    audio: np.ndarray
    sample_rate: int
    phones: tuple[Phone, ...]
    phonemes: str

    @property
    def alignment(self) -> list[tuple[str, int, int]]:
        """``[(phone, start_sample, end_sample)]`` at ``sample_rate``."""
        return [(p.name, p.start, p.end) for p in self.phones]


class _Engine:
    """The loaded library plus the capture buffers its callback fills (use under _LOCK)."""

    def __init__(self) -> None:
        self.lib = _load_library()
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[str, int, int]] = []
        self._callback = _CALLBACK(self._on_synth)  # kept alive: C holds the pointer
        lib = self.lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint,
                                     ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
                                     ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                     _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT)
        if rate <= 0:
            raise VocoderError(f"espeak_Initialize failed (returned {rate}): is the "
                               f"espeak-ng-data directory installed? {_INSTALL_HINT}")
        if rate != ENGINE_RATE:
            raise VocoderError(f"eSpeak NG reports a sample rate of {rate} Hz; this binding "
                               f"expects {ENGINE_RATE} Hz")
        lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n, events) -> int:
        if wav and n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (n,)).astype(np.int16, copy=True))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            ev = events[i]
            if ev.type == _EVENT_PHONEME:
                name = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                self.events.append((name, int(ev.sample), int(ev.text_position)))
            i += 1
        return 0  # 0 = keep synthesising


_ENGINE: _Engine | None = None


def _load_library() -> ctypes.CDLL:
    errors = []
    for name in _LIB_NAMES:
        path = ctypes.util.find_library(name) if "." not in name else name
        if not path:
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            errors.append(str(e))
    raise VocoderError(f"eSpeak NG shared library not found ({'; '.join(errors) or 'no match'}): "
                       f"{_INSTALL_HINT}")


def _engine() -> _Engine:
    global _ENGINE
    if _ENGINE is None:
        _ENGINE = _Engine()
    return _ENGINE


def is_available() -> bool:
    """True when libespeak-ng loads and initialises (never raises)."""
    try:
        with _LOCK:
            _engine()
        return True
    except VocoderError:
        return False


def version() -> str:
    """The eSpeak NG version string, e.g. "1.51" (raises VocoderError if missing)."""
    with _LOCK:
        lib = _engine().lib
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        return (lib.espeak_Info(None) or b"unknown").decode("utf-8", "replace")


def _set_voice(eng: _Engine, voice: str) -> None:
    if not isinstance(voice, str) or not voice:
        raise VocoderError(f"voice must be a non-empty string like 'en-us' or 'en+f2', "
                           f"got {voice!r}")
    err = eng.lib.espeak_SetVoiceByName(voice.encode("utf-8"))
    if err != 0:
        raise VocoderError(f"eSpeak NG has no voice {voice!r} (error {err}); use a language "
                           f"name with an optional variant, e.g. 'en-us', 'en+m3', 'en+f2'")


def _check_text(text: str) -> bytes:
    if not isinstance(text, str) or not text.strip():
        raise VocoderError(f"text must be a non-empty string, got {text!r}")
    return text.encode("utf-8") + b"\0"


def phonemize(text: str, voice: str = "en-us") -> str:
    """eSpeak's ASCII phoneme string for ``text`` (``'``/``,`` mark primary/secondary stress).

    Clauses are joined with spaces.
    """
    data = _check_text(text)
    with _LOCK:
        eng = _engine()
        _set_voice(eng, voice)
        return _text_to_phonemes(eng, data)


def _text_to_phonemes(eng: _Engine, data: bytes) -> str:
    buf = ctypes.create_string_buffer(data)
    ptr = ctypes.c_char_p(ctypes.addressof(buf))
    clauses = []
    # espeak_TextToPhonemes consumes one clause per call and advances the pointer,
    # setting it to NULL at the end of the text.
    for _ in range(len(data) + 1):
        out = eng.lib.espeak_TextToPhonemes(ctypes.byref(ptr), _CHARS_UTF8, 0)
        if out:
            clauses.append(out.decode("utf-8", "replace").strip())
        if not ptr.value:
            break
    return " ".join(c for c in clauses if c)


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 175) -> Synthesis:
    """Speak ``text`` with eSpeak NG.

    Args:
        text: UTF-8 text (plain, no SSML).
        voice: voice name, optionally with a variant: "en-us", "en+m3", "en-us+f2".
        rate_wpm: speaking rate in words per minute (eSpeak accepts 80..450).

    Returns:
        ``Synthesis`` with int16 audio (N,) at ``ENGINE_RATE`` and phones tiling [0, N).

    Raises:
        VocoderError: library missing, unknown voice, empty text, or no audio produced.
    """
    data = _check_text(text)
    if not 80 <= int(rate_wpm) <= 450:
        raise VocoderError(f"rate_wpm must be in 80..450, got {rate_wpm}")
    with _LOCK:
        eng = _engine()
        _set_voice(eng, voice)
        # Parameters are global and persist across calls: set the rate every time.
        eng.lib.espeak_SetParameter(_PARAM_RATE, int(rate_wpm), 0)
        eng.chunks, eng.events = [], []
        err = eng.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                   None, None)
        chunks, events = eng.chunks, eng.events
        eng.chunks, eng.events = [], []
        if err != 0:
            raise VocoderError(f"espeak_Synth failed with error {err} for text {text[:60]!r}")
        phonemes = _text_to_phonemes(eng, data)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if audio.size == 0 or not events:
        raise VocoderError(f"eSpeak NG produced no audio/phones for text {text[:60]!r}")
    phones = _build_phones(events, audio.size)
    phones = _apply_stress(phones, phonemes)
    return Synthesis(audio=audio, sample_rate=ENGINE_RATE, phones=tuple(phones),
                     phonemes=phonemes)


def _build_phones(events: list[tuple[str, int, int]], n_samples: int) -> list[Phone]:
    """Turn (name, start_sample, text_position) events into phones tiling [0, n_samples)."""
    starts = [(PAUSE if name.startswith("_") else name, min(max(s, 0), n_samples), tpos)
              for name, s, tpos in events]
    if starts[0][1] > 0:
        starts.insert(0, (PAUSE, 0, -1))  # silence before the first event
    phones: list[Phone] = []
    word, last_tpos = -1, None
    for i, (name, start, tpos) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else n_samples
        if end <= start:
            continue  # zero-length marks (e.g. the final "_" at the end of the audio)
        if name == PAUSE:
            w, last_tpos = -1, None
        else:
            if tpos != last_tpos:
                word, last_tpos = word + 1, tpos
            w = word
        if phones and phones[-1].name == PAUSE and name == PAUSE:
            phones[-1] = Phone(PAUSE, phones[-1].start, end)  # merge adjacent pauses
            continue
        phones.append(Phone(name, start, end, STRESS_NONE, w))
    return phones


def _tokenize(phonemes: str, names: set[str]) -> list[tuple[str, int]]:
    """Split an ASCII phoneme string into (phone, stress) using the known phone names."""
    by_len = sorted(names, key=len, reverse=True)
    out: list[tuple[str, int]] = []
    stress, i = STRESS_NONE, 0
    while i < len(phonemes):
        ch = phonemes[i]
        if ch == "'":
            stress, i = STRESS_PRIMARY, i + 1
            continue
        if ch == ",":
            stress, i = STRESS_SECONDARY, i + 1
            continue
        if ch.isspace():
            i += 1
            continue
        match = next((n for n in by_len if phonemes.startswith(n, i)), ch)
        out.append((match, stress))
        stress, i = STRESS_NONE, i + len(match)
    return out


def _apply_stress(phones: list[Phone], phonemes: str) -> list[Phone]:
    speech = [i for i, p in enumerate(phones) if not p.is_pause]
    tokens = _tokenize(phonemes, {phones[i].name for i in speech})
    a = [phones[i].name for i in speech]
    b = [t for t, _ in tokens]
    out = list(phones)
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            idx = speech[block.a + k]
            p = out[idx]
            out[idx] = Phone(p.name, p.start, p.end, tokens[block.b + k][1], p.word)
    return out
