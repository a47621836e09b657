"""The built-in music corpus: composition, MIDI, FluidSynth rendering, format, determinism."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import soundfile as sf

from tests.music import needs_fluidsynth
from vocoder.cli import main
from vocoder.data import load_manifest
from vocoder.data import music as M
from vocoder.errors import VocoderError


def test_compose_cycles_through_the_tag_combinations():
    combos = M.combinations()
    assert len(combos) == len(M.FAMILIES) * len(M.TEMPI)
    for i in range(2 * len(combos)):
        clip = M.compose(0, i, 3.0)
        assert (clip.family, clip.tempo) == combos[i % len(combos)]
        assert clip.tags == [clip.family, clip.tempo]
        assert clip.program in M.FAMILIES[clip.family]
        lo, hi = M.TEMPI[clip.tempo]
        assert lo <= clip.bpm <= hi
        beats = 3.0 * clip.bpm / 60
        assert clip.notes and all(0 <= n.start < beats for n in clip.notes)
        assert all(0 <= n.pitch <= 127 and 1 <= n.velocity <= 127 for n in clip.notes)


def test_compose_is_a_function_of_seed_and_index():
    assert M.compose(5, 7, 2.0) == M.compose(5, 7, 2.0)
    assert M.compose(5, 7, 2.0) != M.compose(6, 7, 2.0)
    clips = [M.compose(0, i, 2.0) for i in range(60)]
    assert {c.pattern for c in clips} == set(M.PATTERNS)
    assert {c.mode for c in clips} == set(M.MODES)
    assert len({c.tonic % 12 for c in clips}) >= 8


def test_note_rate_follows_the_tempo():
    # Eighth notes everywhere: onsets per second = 2 * bpm / 60 for every pattern.
    for i in range(20):
        clip = M.compose(1, i, 4.0)
        onsets = sorted({n.start for n in clip.notes})
        assert np.allclose(np.diff(onsets), 0.5), clip.pattern


def test_midi_file_says_what_was_composed():
    mido = pytest.importorskip("mido")  # an optional dependency (the music extra)
    clip = M.compose(0, 3, 2.0)
    mid = mido.MidiFile(file=io.BytesIO(M.midi_bytes(clip, 2.0)))
    assert mid.type == 0 and len(mid.tracks) == 1
    msgs = list(mid.tracks[0])
    tempo = next(m.tempo for m in msgs if m.type == "set_tempo")
    assert round(mido.tempo2bpm(tempo)) == clip.bpm
    assert next(m.program for m in msgs if m.type == "program_change") == clip.program
    ons = [m for m in msgs if m.type == "note_on"]
    assert [m.note for m in ons] == [n.pitch for n in sorted(clip.notes, key=lambda n: (
        n.start, n.pitch))]
    seconds = mid.length
    assert seconds == pytest.approx(2.0 + M.TAIL_S, abs=0.01)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


@needs_fluidsynth
def test_same_seed_gives_identical_files(tmp_path):
    a = M.build_music_corpus(tmp_path / "a", clips=3, seconds=0.5, seed=7, progress=False)
    M.build_music_corpus(tmp_path / "b", clips=3, seconds=0.5, seed=7, progress=False)
    M.build_music_corpus(tmp_path / "c", clips=3, seconds=0.5, seed=8, progress=False)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a.entries) == 3 and set(fa) == set(fb)
    assert fa == fb
    assert all(fa[k] != fc[k] for k in fa if k.startswith("wavs/"))


@needs_fluidsynth
def test_format_and_splits(music_corpus):
    info = json.loads((music_corpus / "corpus.json").read_text())
    assert info["feature_names"] == [] and info["binary"] == [] and info["speakers"] == []
    assert info["tags"] == [*M.FAMILIES, *M.TEMPI]
    assert info["tag_groups"] == [list(M.FAMILIES), list(M.TEMPI)]
    assert info["source"]["generator"] == "fluidsynth" and info["source"]["seed"] == 0
    assert len(info["source"]["soundfont"]["sha256"]) == 64
    ds = load_manifest(music_corpus)
    assert len(ds.entries) == 60 and not list(music_corpus.rglob("*.tmp"))
    for i, e in enumerate(ds.entries):
        assert e.features is None and list(e.tags) == list(M.combinations()[i % 10])
        wav = sf.info(str(e.wav))
        assert (wav.samplerate, wav.channels, wav.subtype) == (16000, 1, "PCM_16")
        assert wav.frames == 32000  # 2 s = 400 frames of 80
        audio = sf.read(str(e.wav), dtype="float32")[0]
        assert np.abs(audio).max() == pytest.approx(M.PEAK, abs=1e-3)
        assert np.sqrt(np.mean(audio ** 2)) > 0.01  # music, not silence
        assert abs(audio[-1]) < 1e-3  # faded out at the cut
    # Six clips per combination: the last two of each are the test split.
    for combo in M.combinations():
        splits = [e.split for e in ds.entries if tuple(e.tags) == combo]
        assert splits == ["train"] * 4 + ["test"] * 2


@needs_fluidsynth
def test_cli_builds_a_corpus(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["corpus", "music", "--out", str(out), "--clips", "2", "--seconds", "0.3",
                 "--seed", "1", "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert "2 utterances" in line and "tags piano, organ" in line
    assert len(load_manifest(out).entries) == 2


@needs_fluidsynth
@pytest.mark.parametrize("kwargs,match", [
    ({"clips": 0}, "clips must be an int >= 1"),
    ({"seconds": 0}, r"seconds must be in \(0, 60\]"),
    ({"test_fraction": 1.0}, r"test_fraction must be in \[0, 1\)"),
    ({"soundfont": "/nonexistent.sf2"}, "soundfont not found: /nonexistent.sf2"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(VocoderError, match=match):
        M.build_music_corpus(tmp_path / "x", **{"clips": 1, "seconds": 0.2, **kwargs},
                             progress=False)
    assert not (tmp_path / "x" / "corpus.json").exists()


def test_missing_fluidsynth_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VocoderError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        M.build_music_corpus(tmp_path / "x", clips=1, seconds=0.2, progress=False)
