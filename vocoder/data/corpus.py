"""The on-disk dataset format that training reads, the built-in eSpeak corpus, user data.

Format (a directory)::

    corpus.json     {"format": "vocoder-corpus", "version": 1, "sample_rate": 16000,
                     "hop_length": 80, "feature_names": [...], "binary": [bool per dim],
                     "speakers": ["en-us", ...], "source": {generator settings, seed}}
    manifest.jsonl  one object per line: {"id", "wav": "wavs/ID.wav",
                     "features": "feats/ID.npy", "speaker": int, "split": "train"|"test",
                     "text": str}
    wavs/*.wav      mono PCM16 at sample_rate
    feats/*.npy     float32 (n_frames, D), unnormalised; n_frames * hop_length == len(wav)

Optional, for music and other non-speech data:

* tags: corpus.json ``"tags": ["piano", ..., "fast", "slow"]`` names the entries of a
  multi-hot global-conditioning vector, and then every row has ``"tags": [names]`` (a
  subset, ``[]`` for none). ``"tag_groups": [["fast", "slow"], ...]`` may say which tags
  exclude each other (the tag classifier chooses one per group).
* no frame features: ``"feature_names": []`` and ``"binary": []``; rows have no
  ``features`` (a model without local conditioning). ``hop_length`` still sets the
  frame unit of training crops; audio is zero-padded to whole frames when read.
* no speakers: ``"speakers": []``; rows have no ``speaker``.

Every file is written to a temporary name in its final directory and renamed into place,
and ``corpus.json`` is written last: a directory without it is an unfinished build.

Built-in corpus: sentences from ``vocoder.data.sentences`` (seeded), spoken by eSpeak NG
voices/variants (one voice = one speaker) at a per-utterance rate drawn from the seed,
resampled 22,050 Hz -> ``sample_rate`` with soxr and zero-padded at the end to a whole
number of frames (``vocoder.features.frontend``; nothing is cut). For each speaker the
last ``max(1, round(test_fraction * utterances))`` utterances (none if test_fraction is
0 or there is a single utterance) form the test split. eSpeak runs in one fresh worker
process per build, so the same arguments give byte-identical files (eSpeak's output
drifts by a few samples with its internal state within one process).
"""

from __future__ import annotations

import csv
import io
import json
import math
import multiprocessing
import os
import random
import re
import tempfile
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from vocoder.errors import VocoderError

if TYPE_CHECKING:
    from vocoder.features.hts import HTSConfig, QuestionUsage

FORMAT = "vocoder-corpus"
VERSION = 1
SPLITS = ("train", "test")
DEFAULT_SPEAKERS = ("en-us", "en-us+m3", "en-us+f2", "en-us+m7", "en-us+f4", "en-us+m1",
                    "en-us+f3", "en-us+m5")
RATE_RANGE_WPM = (150, 195)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Entry:
    """One utterance of a manifest. Paths are absolute (resolved against the manifest).

    ``features`` is a (Tf, D) .npy and ``labels`` an HTS label file; a dataset in the
    vocoder format has ``features`` unless it declares none, a user's manifest may have
    either. ``tags`` are the row's tag names (None: the row has no "tags" key).
    """

    id: str
    wav: Path
    speaker: int = 0
    split: str = "train"
    text: str = ""
    features: Path | None = None
    labels: Path | None = None
    tags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset directory: ``info`` is corpus.json, ``entries`` the manifest."""

    root: Path
    info: dict[str, Any]
    entries: tuple[Entry, ...] = field(default=())

    @property
    def sample_rate(self) -> int:
        return int(self.info["sample_rate"])

    @property
    def hop_length(self) -> int:
        return int(self.info["hop_length"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.info["feature_names"])

    @property
    def binary(self) -> np.ndarray:
        """bool (D,): dimensions that normalisation must leave alone."""
        return np.asarray(self.info["binary"], dtype=bool)

    @property
    def speakers(self) -> list[str]:
        return list(self.info["speakers"])

    @property
    def mel(self):
        """The :class:`~vocoder.features.mel.MelConfig` of a mel dataset (corpus.json
        "mel", :mod:`vocoder.data.mel_corpus`), else None."""
        from vocoder.data.mel_corpus import dataset_mel

        return dataset_mel(self.info, self.root)

    @property
    def has_features(self) -> bool:
        """False for a dataset without frame features (``"feature_names": []``)."""
        return bool(self.info["feature_names"])

    @property
    def tags(self) -> list[str]:
        """The names of the multi-hot gc vector's entries ([] when untagged)."""
        return list(self.info.get("tags") or [])

    @property
    def tag_groups(self) -> list[list[str]]:
        """Groups of mutually exclusive tags (corpus.json "tag_groups"; [] when none)."""
        return [list(g) for g in self.info.get("tag_groups") or []]

    def gc(self, entry: Entry) -> np.ndarray | None:
        """float32 (len(tags),) multi-hot vector of ``entry``'s tags, None if untagged."""
        if not self.tags:
            return None
        from vocoder.tags import multi_hot

        return multi_hot(entry.tags or (), self.tags, f"utterance {entry.id!r}: ")

    def split(self, name: str) -> list[Entry]:
        """The entries of split ``name`` ("train" or "test"), in manifest order."""
        if name not in SPLITS:
            raise VocoderError(f"split must be one of {SPLITS}, got {name!r}")
        return [e for e in self.entries if e.split == name]

    def load(self, entry: Entry) -> tuple[np.ndarray, np.ndarray]:
        """``(audio int16 (n_frames * H,), features float32 (n_frames, D))`` of ``entry``.

        Audio is cut or zero-padded to exactly ``n_frames * H`` (validation already
        bounded the difference to one frame). Without frame features, ``n_frames`` is
        ``ceil(len(wav) / H)`` and features is (n_frames, 0).
        """
        audio, _ = sf.read(str(entry.wav), dtype="int16", always_2d=False)
        if entry.features is None and not self.has_features:
            feats = np.zeros((math.ceil(audio.size / self.hop_length), 0), np.float32)
        else:
            feats = np.load(entry.features, allow_pickle=False).astype(np.float32, copy=False)
        n = feats.shape[0] * self.hop_length
        audio = audio[:n] if audio.size >= n else np.pad(audio, (0, n - audio.size))
        return audio, feats


# -- atomic writes ----------------------------------------------------------------------

def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; datasets are shared read-only files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, audio.astype(np.int16), sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def _write_dataset_files(out: Path, info: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    _atomic_write(out / "manifest.jsonl", lines.encode("utf-8"))
    _atomic_write(out / "corpus.json",
                  (json.dumps(info, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _write_utterance(out: Path, utt_id: str, audio: np.ndarray, feats: np.ndarray,
                     sample_rate: int) -> tuple[str, str]:
    wav_rel, feat_rel = f"wavs/{utt_id}.wav", f"feats/{utt_id}.npy"
    _atomic_write(out / wav_rel, _wav_bytes(audio, sample_rate))
    _atomic_write(out / feat_rel, _npy_bytes(feats))
    return wav_rel, feat_rel


# -- the built-in corpus ----------------------------------------------------------------

def _resolve_speakers(speakers: int | Sequence[str]) -> list[str]:
    if isinstance(speakers, int) and not isinstance(speakers, bool):
        if not 1 <= speakers <= len(DEFAULT_SPEAKERS):
            raise VocoderError(f"speakers must be 1..{len(DEFAULT_SPEAKERS)} (the built-in "
                               f"voices {list(DEFAULT_SPEAKERS)}) or a list of eSpeak voice "
                               f"names, got {speakers}")
        return list(DEFAULT_SPEAKERS[:speakers])
    voices = [str(v) for v in speakers]
    if not voices or len(set(voices)) != len(voices):
        raise VocoderError(f"speakers must be a non-empty list of distinct voice names, "
                           f"got {voices}")
    return voices


def _n_test(utterances: int, test_fraction: float) -> int:
    if test_fraction <= 0 or utterances < 2:
        return 0
    return min(utterances - 1, max(1, round(test_fraction * utterances)))


def _synthesize_job(job: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Worker: (text, voice, sample_rate, hop, rate_wpm, f0_method) -> (audio, features)."""
    from vocoder.features import frontend

    text, voice, sample_rate, hop_length, rate, f0_method = job
    utt = frontend.synthesize_utterance(text, voice, sample_rate, hop_length,
                                        rate_wpm=rate, f0_method=f0_method)
    return utt.audio, utt.features


def build_espeak_corpus(out: str | Path, speakers: int | Sequence[str] = 4,
                        utterances: int = 50, sample_rate: int = 16000, hop_length: int = 80,
                        seed: int = 0, test_fraction: float = 0.1, f0_method: str = "dio",
                        progress: bool = True) -> Dataset:
    """Build the built-in multi-speaker corpus (see the module docstring) into ``out``.

    Args:
        out: target directory (created; existing files of the same names are replaced).
        speakers: how many of ``DEFAULT_SPEAKERS``, or a list of eSpeak voice names.
        utterances: utterances per speaker.
        sample_rate, hop_length: the dataset's rate and frame hop.
        seed: names the sentences and speaking rates; same seed -> identical files.
        test_fraction: share of each speaker's utterances held out as "test".
        f0_method: "dio" or "harvest" (``vocoder.features.f0``).
        progress: show a tqdm bar (stderr).

    Returns:
        The written dataset, as ``load_manifest(out)`` would return it.
    """
    # Imported here so that reading a dataset needs neither eSpeak nor pyworld.
    from vocoder.data.sentences import make_sentence
    from vocoder.features import espeak, f0, linguistic

    voices = _resolve_speakers(speakers)
    if utterances < 1:
        raise VocoderError(f"utterances must be >= 1, got {utterances}")
    if not 0.0 <= test_fraction < 1.0:
        raise VocoderError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if sample_rate <= 0 or hop_length <= 0:
        raise VocoderError(f"sample_rate and hop_length must be > 0, got {sample_rate}, "
                           f"{hop_length}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_test = _n_test(utterances, test_fraction)
    jobs, rows = [], []
    for s, voice in enumerate(voices):
        for i in range(utterances):
            text = make_sentence(f"{seed}/{s}", i)
            rate = random.Random(f"vocoder-rate:{seed}:{s}:{i}").randint(*RATE_RANGE_WPM)
            jobs.append((text, voice, sample_rate, hop_length, rate, f0_method))
            rows.append({"id": f"spk{s:02d}_{i:04d}", "wav": "", "features": "",
                         "speaker": s, "split": "test" if i >= utterances - n_test
                         else "train", "text": text})
    # eSpeak NG keeps internal state between calls (pitch flutter phase, noise generator),
    # so the same text can come out a few samples different later in a process. One
    # fresh worker process running the jobs in order makes a build repeatable.
    # (A pool of one: jobs run in submission order. "spawn", as a fork of a process
    # that has torch threads is unsafe; like any spawn user, a calling script needs an
    # ``if __name__ == "__main__":`` guard. A crashed worker raises, it does not hang.)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=ctx) as pool, \
            tqdm(total=len(jobs), desc="eSpeak corpus", unit="utt",
                 disable=not progress) as bar:
        try:
            for row, (audio, feats) in zip(rows, pool.map(_synthesize_job, jobs)):
                row["wav"], row["features"] = _write_utterance(out, row["id"], audio,
                                                               feats, sample_rate)
                bar.update(1)
        except BrokenProcessPool:
            raise VocoderError("the eSpeak worker process died (crash or out of memory) "
                               "while building the corpus") from None
    names = linguistic.feature_names()
    info = {
        "format": FORMAT, "version": VERSION, "sample_rate": sample_rate,
        "hop_length": hop_length, "feature_names": names,
        "binary": [bool(b) for b in linguistic.binary_mask(names)], "speakers": voices,
        "source": {
            "generator": "espeak-ng", "espeak_version": espeak.version(), "seed": seed,
            "utterances_per_speaker": utterances, "test_fraction": test_fraction,
            "test_per_speaker": n_test, "rate_wpm_range": list(RATE_RANGE_WPM),
            "grammar": "vocoder/data/grammar.json", "resampler": "soxr HQ",
            "engine_rate": espeak.ENGINE_RATE,
            "framing": "zero-pad at the end to ceil(N / hop) frames",
            "f0": {"method": f0_method, "floor_hz": f0.DEFAULT_F0_FLOOR,
                   "ceil_hz": f0.DEFAULT_F0_CEIL},
        },
    }
    _write_dataset_files(out, info, rows)
    return load_manifest(out)


# -- reading manifests ------------------------------------------------------------------

def _read_rows(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "id" not in reader.fieldnames \
                or "wav" not in reader.fieldnames:
            raise VocoderError(f"{path}: a CSV manifest needs a header with at least the "
                               f"columns id and wav, got {reader.fieldnames}")
        return [{k: v for k, v in row.items() if k and v not in (None, "")}
                for row in reader]
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise VocoderError(f"{path}:{lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise VocoderError(f"{path}:{lineno}: each line must be a JSON object")
        rows.append(row)
    return rows


def _parse_entries(path: Path, rows: list[dict[str, Any]]) -> tuple[list[Entry], list[str]]:
    """Rows -> entries; string speaker names become indices in order of appearance."""
    base = path.parent
    entries, names, seen = [], [], set()
    for n, row in enumerate(rows, 1):
        utt_id = str(row.get("id", "")).strip()
        if not utt_id:
            raise VocoderError(f"{path}: row {n} has no id")
        if not _ID.match(utt_id):
            raise VocoderError(f"{path}: utterance id {utt_id!r} must be letters, digits, "
                               f"'_', '-', '.' (it names output files)")
        if utt_id in seen:
            raise VocoderError(f"{path}: utterance id {utt_id!r} appears twice")
        seen.add(utt_id)
        if "wav" not in row:
            raise VocoderError(f"{path}: utterance {utt_id!r} has no wav")
        speaker = row.get("speaker", 0)
        if isinstance(speaker, str) and not speaker.lstrip("-").isdigit():
            if speaker not in names:
                names.append(speaker)
            speaker = names.index(speaker)
        try:
            speaker = int(speaker)
        except (TypeError, ValueError):
            raise VocoderError(f"utterance {utt_id!r}: speaker must be an int or a name, "
                               f"got {speaker!r}") from None
        if speaker < 0:
            raise VocoderError(f"utterance {utt_id!r}: speaker must be >= 0, got {speaker}")
        split = str(row.get("split", "train"))
        if split not in SPLITS:
            raise VocoderError(f"utterance {utt_id!r}: split must be one of {SPLITS}, "
                               f"got {split!r}")
        feats = row.get("features")
        labels = row.get("labels") or row.get("label")
        tags = row.get("tags")
        if isinstance(tags, str):  # a CSV cell: names separated by spaces
            tags = tags.split()
        if tags is not None:
            from vocoder.tags import check_tag_names

            tags = check_tag_names(tags, f"utterance {utt_id!r}")
        entries.append(Entry(id=utt_id, wav=base / str(row["wav"]), speaker=speaker,
                             split=split, text=str(row.get("text", "")),
                             features=base / str(feats) if feats else None,
                             labels=base / str(labels) if labels else None, tags=tags))
    if not entries:
        raise VocoderError(f"manifest {path} has no utterances")
    return entries, names


def _check_entry(entry: Entry, sample_rate: int | None, hop_length: int | None,
                 feature_dim: int | None, check_values: bool) -> int:
    """Validate one entry's files; returns its sample rate."""
    who = f"utterance {entry.id!r}"
    if not entry.wav.is_file():
        raise VocoderError(f"{who}: wav file not found: {entry.wav}")
    try:
        info = sf.info(str(entry.wav))
    except RuntimeError as e:
        raise VocoderError(f"{who}: cannot read {entry.wav} as audio: {e}") from None
    if info.channels != 1:
        raise VocoderError(f"{who}: {entry.wav} has {info.channels} channels; mono expected")
    if sample_rate is not None and info.samplerate != sample_rate:
        raise VocoderError(f"{who}: {entry.wav} is at {info.samplerate} Hz but the dataset "
                           f"is at {sample_rate} Hz")
    if entry.features is None or not entry.features.name.endswith(".npy"):
        return info.samplerate
    from vocoder.inputs import read_npy

    feats = read_npy(entry.features, f"{who}: ", None if check_values else "r")
    if feats.ndim != 2:
        raise VocoderError(f"{who}: features must be 2-D (frames, dims), got {feats.shape}")
    if feature_dim is not None and feats.shape[1] != feature_dim:
        raise VocoderError(f"{who}: features have {feats.shape[1]} dims, the dataset "
                           f"declares {feature_dim}")
    if hop_length is not None:
        audio_frames = math.ceil(info.frames / hop_length)
        if abs(feats.shape[0] - audio_frames) > 1:
            raise VocoderError(f"{who}: {feats.shape[0]} feature frames but the audio has "
                               f"{info.frames} samples = {audio_frames} frames at hop "
                               f"{hop_length} (tolerance: one frame)")
    if check_values and not np.all(np.isfinite(feats)):
        raise VocoderError(f"{who}: features in {entry.features} contain NaN or Inf")
    return info.samplerate


def read_manifest(path: str | Path, sample_rate: int | None = None,
                  hop_length: int | None = None, feature_dim: int | None = None,
                  check_values: bool = True) -> list[Entry]:
    """Read and validate a manifest: our JSONL, a user's JSONL, or a CSV with a header.

    Columns: ``id``, ``wav`` (required); ``features`` (.npy, (Tf, D)) or ``labels`` (HTS
    label file); ``speaker`` (int or name; default 0); ``split`` ("train"/"test"; default
    "train"); ``text``; ``tags`` (a list of tag names; in a CSV, names separated by
    spaces). Relative paths are relative to the manifest's directory.

    Checks, each a ``VocoderError`` naming the utterance: missing wav or feature file,
    a wav not at ``sample_rate`` (default: the first wav's rate), not mono, feature
    frames off the audio's ``ceil(len / hop_length)`` by more than one (when
    ``hop_length`` is given), a feature dimension other than ``feature_dim``, NaN/Inf features (when
    ``check_values``).
    """
    path = Path(path)
    if not path.is_file():
        raise VocoderError(f"manifest not found: {path}")
    entries, _ = _parse_entries(path, _read_rows(path))
    for entry in entries:
        rate = _check_entry(entry, sample_rate, hop_length, feature_dim, check_values)
        sample_rate = rate if sample_rate is None else sample_rate
    return entries


def load_manifest(directory: str | Path, check_values: bool = True) -> Dataset:
    """Load and validate a dataset directory in the vocoder format (module docstring)."""
    root = Path(directory)
    info_path = root / "corpus.json"
    if not info_path.is_file():
        hint = " (manifest.jsonl exists: an unfinished build?)" \
            if (root / "manifest.jsonl").is_file() else ""
        raise VocoderError(f"{root} is not a vocoder dataset: corpus.json missing{hint}")
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise VocoderError(f"{info_path}: not valid JSON ({e.msg})") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise VocoderError(f"{info_path}: format must be {FORMAT!r}, got "
                           f"{info.get('format') if isinstance(info, dict) else info!r}")
    if info.get("version") != VERSION:
        raise VocoderError(f"{info_path}: version {info.get('version')!r} is not supported "
                           f"(this vocoder reads version {VERSION})")
    for key in ("sample_rate", "hop_length", "feature_names", "binary", "speakers"):
        if key not in info:
            raise VocoderError(f"{info_path}: missing key {key!r}")
    for key in ("feature_names", "binary", "speakers"):
        if not isinstance(info[key], list):
            raise VocoderError(f"{info_path}: {key!r} must be a list")
    if len(info["binary"]) != len(info["feature_names"]):
        raise VocoderError(f"{info_path}: binary has {len(info['binary'])} entries for "
                           f"{len(info['feature_names'])} feature names")
    tags = _check_info_tags(info, info_path)
    manifest = root / "manifest.jsonl"
    entries = read_manifest(manifest, sample_rate=int(info["sample_rate"]),
                            hop_length=int(info["hop_length"]),
                            feature_dim=len(info["feature_names"]) or None,
                            check_values=check_values)
    for e in entries:
        _check_dataset_entry(e, info, tags, manifest)
    return Dataset(root=root, info=info, entries=tuple(entries))


def _check_info_tags(info: dict[str, Any], info_path: Path) -> tuple[str, ...]:
    """corpus.json's optional "tags" and "tag_groups", validated."""
    from vocoder.tags import check_tag_groups, check_tag_names

    tags = check_tag_names(info.get("tags") or [], f"{info_path}")
    if info.get("tag_groups") is not None:
        if not tags:
            raise VocoderError(f"{info_path}: tag_groups without tags")
        check_tag_groups(info["tag_groups"], tags, f"{info_path}")
    return tags


def _check_dataset_entry(e: Entry, info: dict[str, Any], tags: tuple[str, ...],
                         manifest: Path) -> None:
    """What the dataset's corpus.json promises of each row: features iff it declares
    feature names, tags from its list iff it declares tags, a known speaker."""
    who = f"utterance {e.id!r}"
    if info["feature_names"] and e.features is None:
        raise VocoderError(f"{who}: no features in {manifest}")
    if not info["feature_names"] and e.features is not None:
        raise VocoderError(f"{who}: has features, but corpus.json declares none "
                           f"(\"feature_names\": [])")
    n_speakers = len(info["speakers"])
    if e.speaker >= max(n_speakers, 1):  # no speakers: every row is speaker 0
        raise VocoderError(f"{who}: speaker {e.speaker} but the dataset has "
                           f"{n_speakers} speakers")
    if tags and e.tags is None:
        raise VocoderError(f"{who}: no \"tags\" in {manifest} (the dataset is tagged with "
                           f"{', '.join(tags)}; give [] for none)")
    if not tags and e.tags is not None:
        raise VocoderError(f"{who}: has tags {list(e.tags)}, but corpus.json declares "
                           f"none (\"tags\": [...])")
    for name in e.tags or ():
        if name not in tags:
            raise VocoderError(f"{who}: unknown tag {name!r}; the dataset's tags are "
                               f"{', '.join(tags)}")


# -- the user's own data ----------------------------------------------------------------

def build_features_for_manifest(manifest: str | Path, out: str | Path,
                                question_file: str | Path | None = None,
                                hop_length: int = 80, sample_rate: int | None = None,
                                f0_method: str = "dio", progress: bool = True,
                                hts_config: HTSConfig | None = None) -> Dataset:
    """Turn a user's manifest (wav + HTS labels or a (Tf, D) .npy) into a dataset in ``out``.

    For every utterance: the wav (mono, at ``sample_rate``, default the first wav's rate)
    is zero-padded to ``ceil(N / hop_length)`` frames, log-F0 and voicing are computed
    from it, and the linguistic block comes from its HTS labels (with ``question_file``
    and ``hts_config``, ``vocoder.features.hts``; audio past the labels' end is first
    trimmed, within ``hts_config.max_trailing_s``) or its .npy (which must be within one
    frame of the audio). All utterances must use the same kind of input and dimension.
    Output: wavs (PCM16), feats = [linguistic, log_f0, vuv], manifest.jsonl, corpus.json
    (with the HTS options in ``source.hts``, which synthesis must use too).

    Warns (:class:`vocoder.features.hts.HTSWarning`) when audio was trimmed and when a
    question never fires on the whole dataset; the same notes go into ``source.notes``.
    """
    from vocoder.features import f0, hts

    manifest = Path(manifest)
    entries = read_manifest(manifest, sample_rate=sample_rate, check_values=True)
    _, speaker_names = _parse_entries(manifest, _read_rows(manifest))
    kinds = {"labels" if e.labels is not None else "npy" if e.features is not None
             else "none" for e in entries}
    if "none" in kinds:
        bad = next(e.id for e in entries if e.labels is None and e.features is None)
        raise VocoderError(f"utterance {bad!r}: needs a 'labels' (HTS) or 'features' (.npy) "
                           f"column")
    if len(kinds) > 1:
        raise VocoderError("all utterances must use the same linguistic input: either HTS "
                           "labels or .npy features, not a mix")
    use_labels = kinds == {"labels"}
    questions, usage, trimmed = None, None, {}
    hts_config = hts.HTSConfig() if hts_config is None else hts_config
    if use_labels:
        if question_file is None:
            raise VocoderError("the manifest has HTS labels: give a question file "
                               "(--labels-question-file)")
        questions = hts.load_question_set(question_file, hts_config.matching)
        usage = hts.QuestionUsage(questions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, dim, rate = [], None, sample_rate
    for entry in tqdm(entries, desc="features", unit="utt", disable=not progress):
        audio, sr = sf.read(str(entry.wav), dtype="int16", always_2d=False)
        rate = sr if rate is None else rate
        if audio.size == 0:
            raise VocoderError(f"utterance {entry.id!r}: {entry.wav} is empty")
        if use_labels:
            labels = hts.read_hts_labels(entry.labels)
            audio, cut = hts.fit_audio_to_labels(audio, labels, rate, hop_length,
                                                 hts_config.max_trailing_s, entry.id)
            if cut:
                trimmed[entry.id] = round(cut / rate, 6)
        n_frames = max(1, math.ceil(audio.size / hop_length))
        audio = np.pad(audio, (0, n_frames * hop_length - audio.size))
        if use_labels:
            ling = hts.hts_frame_features(labels, questions, n_frames, rate, hop_length,
                                          hts_config.positions)
            usage.add(ling)
        else:
            ling = hts.load_user_features(entry.features, n_frames, entry.id)
        if dim is None:
            dim = ling.shape[1]
        elif ling.shape[1] != dim:
            raise VocoderError(f"utterance {entry.id!r}: {ling.shape[1]} feature dims, "
                               f"earlier utterances have {dim}")
        log_f0, vuv = f0.extract_f0(audio, rate, hop_length, n_frames, method=f0_method)
        feats = np.concatenate([ling, log_f0[:, None], vuv[:, None]], axis=1)
        if not np.all(np.isfinite(feats)):
            raise VocoderError(f"utterance {entry.id!r}: computed features contain NaN/Inf")
        wav_rel, feat_rel = _write_utterance(out, entry.id, audio, feats, rate)
        rows.append({"id": entry.id, "wav": wav_rel, "features": feat_rel,
                     "speaker": entry.speaker, "split": entry.split, "text": entry.text})
    notes = _hts_notes(usage, trimmed, len(entries), hts_config) if use_labels else []
    framing = "zero-pad at the end to ceil(N / hop) frames"
    if use_labels:
        framing = "audio past the labels' end trimmed to a whole frame, then " + framing
        names = hts.feature_names(questions, hts_config.positions)
        binary = [bool(b) for b in hts.binary_mask(questions, hts_config.positions)]
    else:
        names = [f"user_{k}" for k in range(dim)]
        binary = [False] * dim  # unknown meaning: let normalisation scale every column
    n_speakers = max(e.speaker for e in entries) + 1
    speakers = speaker_names if speaker_names else [str(k) for k in range(n_speakers)]
    info = {
        "format": FORMAT, "version": VERSION, "sample_rate": rate, "hop_length": hop_length,
        "feature_names": names + ["log_f0", "vuv"], "binary": binary + [False, True],
        "speakers": speakers,
        "source": {"generator": "user-manifest", "manifest": str(manifest.resolve()),
                   "linguistic": "hts-labels" if use_labels else "npy",
                   "question_file": str(Path(question_file).resolve()) if use_labels else None,
                   "hts": hts_config.to_dict() if use_labels else None,
                   "framing": framing, "trimmed_s": trimmed, "notes": notes,
                   "f0": {"method": f0_method, "floor_hz": f0.DEFAULT_F0_FLOOR,
                          "ceil_hz": f0.DEFAULT_F0_CEIL}},
    }
    _write_dataset_files(out, info, rows)
    for note in notes:
        warnings.warn(note, hts.HTSWarning, stacklevel=2)
    return load_manifest(out)


def _hts_notes(usage: QuestionUsage, trimmed: dict[str, float], n_utterances: int,
               config: HTSConfig) -> list[str]:
    """The notes of an HTS build for the user: trimmed audio, questions that never fired."""
    notes = []
    if trimmed:
        worst = max(trimmed, key=trimmed.get)
        notes.append(f"trimmed audio past the labels' end in {len(trimmed)} of {n_utterances} "
                     f"utterances (at most {trimmed[worst]:.3f} s, in {worst!r}; up to "
                     f"{config.max_trailing_s:g} s is trimmed, --max-trailing-audio)")
    silent = usage.warning(config.matching)
    if silent:
        notes.append(silent)
    return notes
