"""Speech-recognition data: a dataset directory -> mu-law audio + frame labels -> crops.

A crop is ``crop_frames`` ASR frames ``[s, s + c)`` of an utterance with ``n`` frames
(F samples each). Its logits equal the whole-utterance pass's (tested), because the model
also reads:

* frame context: the ``h = frame_context(cfg)`` frames each side that the non-causal
  convolutions look at (clipped at the utterance's ends, where the whole pass sees zero
  padding too). The stack runs over this *window* of frames ``[w0, w1)``; only the crop's
  frames get a frame loss.
* audio context: the ``rf - 1`` samples before the window (no loss), so that every stack
  output of the window sees its whole receptive field; at the utterance start the input
  begins at sample 0 with the silence class as its previous sample, as in the whole pass.

The next-sample loss covers every sample of the window. Crops near the ends have other
shapes than interior ones; :func:`collate` groups crops of equal shape.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.asr.config import ASRConfig, frame_context, n_frames, stack_receptive_field
from vocoder.asr.labels import UNKNOWN, encode, frame_phones, inventory, phone_columns
from vocoder.errors import VocoderError
from vocoder.mulaw import quantize, silence_class
from vocoder.train.data import IGNORE
from vocoder.train.data import CropSampler as VocoderCropSampler


@dataclass(frozen=True)
class ASRUtterance:
    """mu-law classes (n_frames * F,) (zero-padded audio), each frame's phone name, and
    its class in the inventory (int64 (n_frames,), :data:`~vocoder.asr.labels.UNKNOWN`
    for a phone outside it)."""

    id: str
    classes: np.ndarray
    phones: tuple[str, ...]
    labels: np.ndarray

    @property
    def n_frames(self) -> int:
        return len(self.phones)


def audio_classes(audio: np.ndarray, cfg: ASRConfig) -> np.ndarray:
    """int16 or float audio (N,) -> mu-law classes zero-padded to whole frames
    (n_frames * F,), uint8 for 256 classes."""
    padded = n_frames(len(audio), cfg) * cfg.frame_hop
    classes = quantize(audio, cfg.quantization_channels)
    out = np.full(padded, silence_class(cfg.quantization_channels), classes.dtype)
    out[: len(classes)] = classes
    return out.astype(np.uint8 if cfg.quantization_channels <= 256 else np.int32)


@dataclass(frozen=True)
class Window:
    """The stack input for frames ``[first + lo, first + hi)`` of an utterance.

    x (Tw,) int64 previous-sample classes: audio context, then the ``n_window`` frames
    from frame ``first`` on; the model keeps the last ``n_window * F`` positions.
    """

    x: np.ndarray
    first: int
    n_window: int
    lo: int
    hi: int


def window(classes: np.ndarray, total_frames: int, start: int, count: int,
           cfg: ASRConfig) -> Window:
    """The window that gives frames ``[start, start + count)`` exact logits."""
    if not (0 <= start and count >= 1 and start + count <= total_frames):
        raise ValueError(f"frames [{start}, {start + count}) outside 0..{total_frames}")
    hop, h = cfg.frame_hop, frame_context(cfg)
    w0, w1 = max(0, start - h), min(total_frames, start + count + h)
    a, b = max(0, w0 * hop - (stack_receptive_field(cfg) - 1)), w1 * hop
    x = np.empty(b - a, np.int64)
    if a == 0:
        x[0] = silence_class(cfg.quantization_channels)
        x[1:] = classes[: b - 1]
    else:
        x[:] = classes[a - 1: b - 1]
    return Window(x, w0, w1 - w0, start - w0, start - w0 + count)


@dataclass(frozen=True)
class Crop:
    """A training crop: the window's x (Tw,), frame_target (n_window,) with
    :data:`~vocoder.train.data.IGNORE` outside the crop (and on unknown phones), and
    sample_target (n_window * F,) the classes of the window's samples."""

    x: np.ndarray
    frame_target: np.ndarray
    sample_target: np.ndarray

    @property
    def key(self) -> tuple[int, int]:
        return (len(self.x), len(self.frame_target))


def make_crop(utt: ASRUtterance, start: int, crop_frames: int, cfg: ASRConfig) -> Crop:
    c = min(crop_frames, utt.n_frames)
    w = window(utt.classes, utt.n_frames, start, c, cfg)
    target = np.full(w.n_window, IGNORE, np.int64)
    labels = utt.labels[w.first + w.lo: w.first + w.hi]
    target[w.lo: w.hi] = np.where(labels == UNKNOWN, IGNORE, labels)
    hop = cfg.frame_hop
    samples = utt.classes[w.first * hop: (w.first + w.n_window) * hop].astype(np.int64)
    return Crop(w.x, target, samples)


@dataclass
class Group:
    """Crops of one shape stacked: x (B, Tw), frame_target (B, n_window), sample_target
    (B, n_window * F); numpy."""

    x: np.ndarray
    frame_target: np.ndarray
    sample_target: np.ndarray

    @property
    def n_frames(self) -> int:
        return int((self.frame_target != IGNORE).sum())

    @property
    def n_samples(self) -> int:
        return int(self.sample_target.size)


def collate(crops: list[Crop]) -> list[Group]:
    """Stack crops of equal shape; groups come in order of their first crop."""
    groups: dict[tuple[int, int], list[Crop]] = {}
    for crop in crops:
        groups.setdefault(crop.key, []).append(crop)
    return [Group(np.stack([c.x for c in g]), np.stack([c.frame_target for c in g]),
                  np.stack([c.sample_target for c in g])) for g in groups.values()]


class CropSampler(VocoderCropSampler):
    """The vocoder trainer's seeded crop sampler (same draws, same checkpointed state),
    cutting recognition crops."""

    crop = staticmethod(make_crop)


@dataclass
class ASRData:
    """A loaded dataset for recognition: the inventory and the utterances of each split."""

    root: Path
    info: dict[str, Any]
    phones: list[str]
    train: list[ASRUtterance]
    test: list[ASRUtterance]


def load_asr_data(directory: str | Path, cfg: ASRConfig, phones: list[str] | None = None,
                  splits: tuple[str, ...] = ("train", "test"),
                  max_test: int | None = None) -> ASRData:
    """Read a dataset directory (:mod:`vocoder.data.corpus`) and label its frames.

    ``cfg`` gives the frame grid and quantisation (its ``n_phones`` is not used);
    ``phones`` the inventory (default: built from the train split, which must then be
    loaded). Raises a ``VocoderError`` for a dataset without a phone alignment or at
    another sample rate than ``cfg``'s.
    """
    from vocoder.data.corpus import load_manifest

    directory = Path(directory)
    ds = load_manifest(directory)
    columns = phone_columns(ds.feature_names, str(directory))
    if ds.sample_rate != cfg.sample_rate:
        raise VocoderError(f"the model is at {cfg.sample_rate} Hz but the dataset "
                           f"{directory} is at {ds.sample_rate} Hz")
    if phones is None and "train" not in splits:
        raise ValueError("without an inventory the train split must be loaded")

    def load(entry) -> ASRUtterance:
        audio, feats = ds.load(entry)
        classes = audio_classes(audio, cfg)
        names = frame_phones(feats, columns, ds.hop_length, n_frames(len(audio), cfg),
                             cfg.frame_hop, f"utterance {entry.id!r}")
        return ASRUtterance(entry.id, classes, tuple(names), np.empty(0, np.int64))

    loaded = {}
    for split in splits:
        entries = ds.split(split)
        if split == "test" and max_test is not None:
            entries = entries[:max_test]
        loaded[split] = [load(e) for e in entries]
    if phones is None:
        if not loaded["train"]:
            raise VocoderError(f"{directory}: the dataset has no utterance in the train split")
        phones = inventory(columns, [u.phones for u in loaded["train"]])

    def labelled(u: ASRUtterance) -> ASRUtterance:
        return dataclasses.replace(u, labels=encode(list(u.phones), phones))

    return ASRData(directory, ds.info, list(phones),
                   [labelled(u) for u in loaded.get("train", [])],
                   [labelled(u) for u in loaded.get("test", [])])
