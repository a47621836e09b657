"""The built-in music corpus: short clips composed from a seed, rendered by FluidSynth.

Each clip is one General MIDI instrument playing one pattern in one key:

* a **scale** (up and down one or two octaves), an **arpeggio** (through the chords of
  a four-bar progression) or **chords** (the progression's bass notes and triads in
  turn), all in eighth notes, so that the note rate follows the tempo;
* a key (any of the 12 tonics, major or natural minor) in the instrument family's
  register, a tempo drawn from its tempo class, velocities with an accent per bar.

Its tags are the instrument family (``FAMILIES``, a few GM programs each) and the tempo
class ("fast" or "slow", ``TEMPI``); clip ``i`` takes the ``i``-th (family, tempo)
combination in turn, so every combination has the same number of clips (up to one), and
everything else comes from ``random.Random(f"vocoder-music:{seed}:{i}")``.

Rendering: the ``fluidsynth`` command line (Debian ``fluidsynth``) with a GM soundfont
(Debian ``fluid-soundfont-gm``), reverb and chorus off, 32-bit float output at
``RENDER_RATE``, one fresh process per clip; the stereo output is averaged to mono,
resampled to the corpus rate with soxr, cut to ``seconds`` rounded up to whole frames
(with a short fade-out, as the cut falls inside notes), peak-normalised and written as
PCM16. No dithering or other randomness is involved, so the same arguments, fluidsynth
build, soundfont and soxr give byte-identical files.

The dataset has tags and no frame features or speakers (:mod:`vocoder.data.corpus`).
For each (family, tempo) combination the last ``max(1, round(test_fraction * n))`` of
its ``n`` clips (none if test_fraction is 0 or n is 1) form the test split.
"""

from __future__ import annotations

import io
import math
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vocoder.data.corpus import (
    FORMAT,
    VERSION,
    Dataset,
    _atomic_write,
    _n_test,
    _wav_bytes,
    _write_dataset_files,
    load_manifest,
)
from vocoder.errors import VocoderError
from vocoder.fileio import sha256_file

#: Instrument families (tags) and the GM programs (0-based) that stand for each.
FAMILIES: dict[str, tuple[int, ...]] = {
    "piano": (0, 1, 4),
    "organ": (16, 17, 19),
    "guitar": (24, 25, 26),
    "strings": (40, 42, 48),
    "brass": (56, 57, 61),
}
PROGRAM_NAMES = {0: "Acoustic Grand Piano", 1: "Bright Acoustic Piano",
                 4: "Electric Piano 1", 16: "Drawbar Organ", 17: "Percussive Organ",
                 19: "Church Organ", 24: "Nylon Guitar", 25: "Steel Guitar",
                 26: "Jazz Guitar", 40: "Violin", 42: "Cello", 48: "String Ensemble",
                 56: "Trumpet", 57: "Trombone", 61: "Brass Section"}
#: MIDI range of the tonic per family: where its instruments sound natural.
REGISTERS = {"piano": (48, 67), "organ": (48, 64), "guitar": (45, 60),
             "strings": (50, 67), "brass": (48, 62)}
#: Tempo classes (tags) and their ranges in quarter notes per minute.
TEMPI: dict[str, tuple[int, int]] = {"fast": (132, 176), "slow": (56, 80)}
PATTERNS = ("scale", "arpeggio", "chords")
MODES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
#: Chord roots (scale degrees) of a bar each, repeated.
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 3, 0, 4))
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")

TICKS_PER_BEAT = 480
RENDER_RATE = 48000
GAIN = 0.5
PEAK = 0.7
FADE_S = 0.02
#: Rendered past the clip's end, so the cut never falls in FluidSynth's own ending.
TAIL_S = 0.5
DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"


@dataclass(frozen=True)
class Note:
    """A note: start and length in beats, MIDI pitch, velocity 1..127."""

    start: float
    length: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Clip:
    """One composed clip: its tags (family, tempo class) and what it plays."""

    family: str
    tempo: str
    program: int
    bpm: int
    tonic: int
    mode: str
    pattern: str
    notes: tuple[Note, ...]

    @property
    def tags(self) -> list[str]:
        return [self.family, self.tempo]

    def describe(self) -> str:
        return (f"{PROGRAM_NAMES[self.program]}, {self.pattern} in "
                f"{KEY_NAMES[self.tonic % 12]} {self.mode} at {self.bpm} bpm")


def tags() -> list[str]:
    """The corpus's tag names: the families, then the tempo classes."""
    return [*FAMILIES, *TEMPI]


def tag_groups() -> list[list[str]]:
    """Tags that exclude each other: one family, one tempo class per clip."""
    return [list(FAMILIES), list(TEMPI)]


def combinations() -> list[tuple[str, str]]:
    """(family, tempo) in the order clips take them."""
    return [(f, t) for t in TEMPI for f in FAMILIES]


def compose(seed: int, index: int, seconds: float) -> Clip:
    """Clip ``index`` of the corpus of ``seed``: notes starting within ``seconds``."""
    family, tempo = combinations()[index % len(combinations())]
    rng = random.Random(f"vocoder-music:{seed}:{index}")
    program = rng.choice(FAMILIES[family])
    bpm = rng.randint(*TEMPI[tempo])
    mode = rng.choice(sorted(MODES))
    tonic = rng.randint(*REGISTERS[family])
    pattern = rng.choice(PATTERNS)
    progression = rng.choice(PROGRESSIONS)
    beats = seconds * bpm / 60.0
    scale = MODES[mode]

    def pitch(degree: int) -> int:
        return tonic + 12 * (degree // 7) + scale[degree % 7]

    def velocity(beat: float) -> int:
        accent = 14 if beat % 4 == 0 else 0
        return max(1, min(127, 76 + accent + rng.randint(-8, 8)))

    notes: list[Note] = []
    if pattern == "scale":
        span = rng.choice((7, 14))
        up_down = list(range(span)) + list(range(span, 0, -1))
        for k in range(math.ceil(beats / 0.5)):
            notes.append(Note(k * 0.5, 0.45, pitch(up_down[k % len(up_down)]),
                              velocity(k * 0.5)))
    elif pattern == "arpeggio":
        order = (0, 1, 2, 3, 2, 1, 0, 1)
        for k in range(math.ceil(beats / 0.5)):
            root = progression[(k // 8) % len(progression)]
            tones = (root, root + 2, root + 4, root + 7)
            notes.append(Note(k * 0.5, 0.45, pitch(tones[order[k % 8]]), velocity(k * 0.5)))
    else:
        for k in range(math.ceil(beats / 0.5)):
            root = progression[(k // 8) % len(progression)]
            v = velocity(k * 0.5)
            chord = (root - 7,) if k % 2 == 0 else (root, root + 2, root + 4)
            for degree in chord:
                notes.append(Note(k * 0.5, 0.45, pitch(degree), v))
    return Clip(family, tempo, program, bpm, tonic, mode, pattern, tuple(notes))


def midi_bytes(clip: Clip, seconds: float) -> bytes:
    """A type-0 standard MIDI file of ``clip`` (channel 0), ending ``TAIL_S`` after
    ``seconds``."""
    try:
        import mido
    except ImportError:
        raise VocoderError("the music corpus writes MIDI with mido: pip install mido "
                           "(or pip install -e .[music])") from None
    events = []  # (tick, order, message): note-offs before note-ons at the same tick
    for n in clip.notes:
        on = round(n.start * TICKS_PER_BEAT)
        off = on + max(1, round(n.length * TICKS_PER_BEAT))
        events.append((on, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        events.append((off, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2].note))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(clip.bpm), time=0))
    track.append(mido.Message("program_change", program=clip.program, time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = round((seconds + TAIL_S) * clip.bpm / 60.0 * TICKS_PER_BEAT)
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    mid = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def find_fluidsynth() -> str:
    """Path of the fluidsynth command; a VocoderError saying how to install it."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise VocoderError("the music corpus needs the fluidsynth command and a GM "
                           "soundfont: apt-get install fluidsynth fluid-soundfont-gm")
    return exe


def fluidsynth_version(exe: str) -> str:
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def render(midi: bytes, soundfont: Path, exe: str) -> np.ndarray:
    """FluidSynth's rendering of a MIDI file: float32 mono at ``RENDER_RATE``."""
    with tempfile.TemporaryDirectory(prefix="vocoder-music-") as tmp:
        mid, raw = Path(tmp) / "clip.mid", Path(tmp) / "clip.raw"
        mid.write_bytes(midi)
        cmd = [exe, "-n", "-i", "-q", "-R", "0", "-C", "0", "-g", str(GAIN),
               "-r", str(RENDER_RATE), "-o", "synth.dynamic-sample-loading=1",
               "-T", "raw", "-O", "float", "-E", "little", "-F", str(raw),
               str(soundfont), str(mid)]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            raise VocoderError("fluidsynth did not finish rendering a clip in 300 s") \
                from None
        if done.returncode != 0 or not raw.is_file():
            raise VocoderError(f"fluidsynth failed (exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-500:]}")
        stereo = np.fromfile(raw, dtype="<f4")
    if stereo.size % 2:
        raise VocoderError("fluidsynth wrote an odd number of float samples for stereo")
    return stereo.reshape(-1, 2).mean(axis=1, dtype=np.float64).astype(np.float32)


def finish(audio: np.ndarray, n_samples: int, sample_rate: int) -> np.ndarray:
    """Rendered audio at ``RENDER_RATE`` -> int16 (n_samples,) at ``sample_rate``:
    resampled, cut or zero-padded, faded out, peak-normalised to ``PEAK``."""
    import soxr

    x = soxr.resample(audio, RENDER_RATE, sample_rate, quality="HQ").astype(np.float64)
    x = x[:n_samples] if x.size >= n_samples else np.pad(x, (0, n_samples - x.size))
    fade = min(n_samples, max(1, round(FADE_S * sample_rate)))
    x[n_samples - fade:] *= np.linspace(1.0, 0.0, fade)
    peak = np.abs(x).max()
    if peak > 0:
        x *= PEAK / peak
    return np.round(x * 32767).astype(np.int16)


def build_music_corpus(out: str | Path, clips: int = 200, seconds: float = 4.0,
                       sample_rate: int = 16000, hop_length: int = 80, seed: int = 0,
                       test_fraction: float = 0.1, soundfont: str | Path | None = None,
                       progress: bool = True) -> Dataset:
    """Compose and render the music corpus (module docstring) into ``out``.

    Args:
        out: target directory (created; existing files of the same names are replaced).
        clips: number of clips, spread evenly over the (family, tempo) combinations.
        seconds: length of each clip (rounded up to whole frames of ``hop_length``).
        sample_rate, hop_length: the dataset's rate and frame unit.
        seed: names the clips; same seed -> identical files.
        test_fraction: share of each combination's clips held out as "test".
        soundfont: a GM .sf2 (default: Debian's FluidR3_GM).
        progress: show a tqdm bar (stderr).

    Returns:
        The written dataset, as ``load_manifest(out)`` would return it.
    """
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 1:
        raise VocoderError(f"clips must be an int >= 1, got {clips!r}")
    if not (isinstance(seconds, (int, float)) and 0 < seconds <= 60):
        raise VocoderError(f"seconds must be in (0, 60], got {seconds!r}")
    if not 0.0 <= test_fraction < 1.0:
        raise VocoderError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if sample_rate <= 0 or hop_length <= 0:
        raise VocoderError(f"sample_rate and hop_length must be > 0, got {sample_rate}, "
                           f"{hop_length}")
    exe = find_fluidsynth()
    soundfont = Path(soundfont or DEFAULT_SOUNDFONT)
    if not soundfont.is_file():
        raise VocoderError(f"soundfont not found: {soundfont} (apt-get install "
                           f"fluid-soundfont-gm, or pass --soundfont FILE.sf2)")
    n_frames = math.ceil(seconds * sample_rate / hop_length)
    combos = combinations()
    per_combo = [len(range(k, clips, len(combos))) for k in range(len(combos))]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in tqdm(range(clips), desc="music corpus", unit="clip", disable=not progress):
        clip = compose(seed, i, seconds)
        audio = finish(render(midi_bytes(clip, seconds), soundfont, exe),
                       n_frames * hop_length, sample_rate)
        k = i % len(combos)
        rank = i // len(combos)  # this clip's place among its combination's clips
        test = rank >= per_combo[k] - _n_test(per_combo[k], test_fraction)
        utt_id = f"clip{i:04d}"
        _atomic_write(out / "wavs" / f"{utt_id}.wav", _wav_bytes(audio, sample_rate))
        rows.append({"id": utt_id, "wav": f"wavs/{utt_id}.wav", "tags": clip.tags,
                     "split": "test" if test else "train", "text": clip.describe()})
    info = {
        "format": FORMAT, "version": VERSION, "sample_rate": sample_rate,
        "hop_length": hop_length, "feature_names": [], "binary": [], "speakers": [],
        "tags": tags(), "tag_groups": tag_groups(),
        "source": {
            "generator": "fluidsynth", "fluidsynth_version": fluidsynth_version(exe),
            "soundfont": {"file": soundfont.name, "sha256": sha256_file(soundfont)},
            "seed": seed, "clips": clips, "clip_seconds": n_frames * hop_length / sample_rate,
            "test_fraction": test_fraction,
            "families": {k: list(v) for k, v in FAMILIES.items()},
            "tempo_bpm": {k: list(v) for k, v in TEMPI.items()},
            "patterns": list(PATTERNS), "render_rate": RENDER_RATE, "gain": GAIN,
            "resampler": "soxr HQ", "peak": PEAK,
        },
    }
    _write_dataset_files(out, info, rows)
    return load_manifest(out)
