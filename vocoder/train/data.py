"""Training data: a dataset directory -> normalised utterances -> seeded random crops.

The dataset format and its validation (missing wav, sample-rate mismatch, feature/audio
length mismatch beyond one frame, NaN features: each a ``VocoderError`` naming the
utterance) are :mod:`vocoder.data.corpus`'s; this module preloads the utterances, fits
the :class:`~vocoder.features.spec.FeatureSpec` on the training split and cuts crops.

A crop conditions exactly as the whole utterance would
-------------------------------------------------------
A crop is ``crop_frames`` frames ``[s, s + c)`` of an utterance with ``Tf`` frames, hop H.
The loss covers only its samples ``[s*H, (s + c)*H)``, but the model also reads:

* audio context: the inputs ``x`` of the ``ctx = ceil((rf - 1) / H)`` frames before the
  crop (real audio, no loss), so that every lossed sample sees its whole receptive field
  ``rf``. Near the start the window begins at sample 0 instead, whose input is the
  silence class, exactly like the whole-utterance forward (whose causal padding is zeros
  in the hidden state, not silent audio: so we never invent audio before sample 0);
* feature context: ``K = cond_context_frames(cfg)`` frames each side of the audio
  window, passed with ``frame_offset`` so that the upsampler sees the same neighbours as
  for the whole utterance. At the utterance edges we give *fewer* context frames (only
  real ones) and a smaller ``frame_offset``: frames beyond the edge do not exist in the
  whole-utterance pass either, whereas zero-padded frames would feed the upsampler's
  bias and tails into its next level and change the conditioning near the edges.

* context-stack input (a model with ``context_pool`` = P): the window starts on a block
  boundary of the utterance and at least the context stack's receptive field of whole
  blocks before the first lossed sample's block (:func:`window_start`), or at the
  utterance start, so the block-rate stack reads the same blocks as for the whole
  utterance; its initial block stands in for the past only where no lossed sample
  depends on it.

So the logits of every lossed sample equal the whole-utterance forward's (tested).
Crops near an edge have other window shapes than interior ones; :func:`collate` groups
crops of equal shape into tensors, and the trainer runs one forward per group.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.config import (
    WaveNetConfig,
    cond_context_frames,
    context_receptive_field,
    dilations,
)
from vocoder.emphasis import audio_to_classes
from vocoder.errors import VocoderError
from vocoder.excitation import with_phase
from vocoder.features.spec import FeatureSpec
from vocoder.mulaw import silence_class

#: Target value of samples that get no loss (torch's cross-entropy ``ignore_index``).
IGNORE = -100


@dataclass(frozen=True)
class Utterance:
    """One preloaded utterance: mu-law classes (N,) and normalised features (Tf, D),
    ``N == Tf * hop`` (D = 0 without local conditioning); ``gc`` (C,) float32, the
    multi-hot tag vector of a tagged dataset, else None."""

    id: str
    speaker: int
    classes: np.ndarray
    features: np.ndarray
    gc: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.features.shape[0])


@dataclass(frozen=True)
class Crop:
    """The model's inputs for one crop.

    x (Tw,) int64 previous-sample classes; target (Tw,) int64 with :data:`IGNORE` on the
    context; features (Tfw, D) float32 normalised; sample 0 of ``x`` lies
    ``frame_offset`` frames into ``features``; gc (C,) float32 or None.
    """

    utt_id: str
    x: np.ndarray
    target: np.ndarray
    features: np.ndarray
    frame_offset: int
    speaker: int
    gc: np.ndarray | None = None

    @property
    def key(self) -> tuple[int, int, int]:
        return (len(self.x), len(self.features), self.frame_offset)


@dataclass
class Group:
    """Crops of the same shape stacked: x, target (B, Tw); features (B, Tfw, D);
    speaker (B,); one ``frame_offset``; gc (B, C) or None. numpy arrays (the trainer
    moves them)."""

    x: np.ndarray
    target: np.ndarray
    features: np.ndarray
    speaker: np.ndarray
    frame_offset: int
    gc: np.ndarray | None = None

    @property
    def n_targets(self) -> int:
        return int((self.target != IGNORE).sum())

    @property
    def keep(self) -> int:
        """Trailing positions that hold every lossed sample of the group: the forward
        computes logits for these only (the rest is receptive-field context)."""
        lossed = (self.target != IGNORE).any(axis=0)
        return int(len(lossed) - np.argmax(lossed)) if lossed.any() else 1


def context_frames(cfg: WaveNetConfig) -> int:
    """Frames of audio context before a crop: enough for the main stack's receptive
    field (a context stack may need more: :func:`window_start`)."""
    return math.ceil(sum(dilations(cfg)) / cfg.hop_length)  # receptive field - 1


def window_start(cfg: WaveNetConfig, start: int) -> int:
    """First frame of the audio window of a crop whose loss starts at frame ``start``.

    Without a context stack: :func:`context_frames` before it (or frame 0). With one
    (P = ``context_pool``): the first lossed sample s reads the gate biases of samples
    back to ``s - (D - 1)`` (D = sum of the main dilations), whose block j needs the
    :func:`~vocoder.config.context_receptive_field` rfc input blocks before it. So the
    window starts on a block boundary at least rfc blocks before block j, and on a frame
    boundary (for the features): a multiple of lcm(hop, P) samples, or the utterance
    start, where the model's initial block is the whole-utterance pass's too.
    """
    if not cfg.context_pool:
        return max(0, start - context_frames(cfg))
    hop, P = cfg.hop_length, cfg.context_pool
    s = start * hop
    D = sum(dilations(cfg))
    need = min(s - D, ((s - D + 1) // P - context_receptive_field(cfg)) * P)
    unit = math.lcm(hop, P)
    return max(0, need // unit * unit) // hop


def make_crop(utt: Utterance, start: int, crop_frames: int, cfg: WaveNetConfig) -> Crop:
    """The crop of ``utt`` at frames ``[start, start + crop_frames)`` (clipped to the
    utterance) with its audio and feature context; see the module docstring."""
    hop = cfg.hop_length
    tf = utt.n_frames
    c = min(crop_frames, tf)
    if not 0 <= start <= tf - c:
        raise ValueError(f"crop start {start} outside 0..{tf - c} for {utt.id!r}")
    w0 = window_start(cfg, start)                     # first frame of the audio window
    w1 = start + c                                    # end of the crop
    k = cond_context_frames(cfg)
    f0, f1 = max(0, w0 - k), min(tf, w1 + k)
    classes = utt.classes
    a, b = w0 * hop, w1 * hop
    x = np.empty(b - a, np.int64)
    if a == 0:
        x[0] = silence_class(cfg.quantization_channels)
        x[1:] = classes[: b - 1]
    else:
        x[:] = classes[a - 1: b - 1]
    target = classes[a:b].astype(np.int64)
    target[: (start - w0) * hop] = IGNORE
    return Crop(utt.id, x, target, utt.features[f0:f1], w0 - f0, utt.speaker, utt.gc)


def whole_utterance(utt: Utterance, cfg: WaveNetConfig) -> Crop:
    """The whole utterance as one 'crop' (validation): every sample gets a loss."""
    return make_crop(utt, 0, utt.n_frames, cfg)


def collate(crops: list[Crop]) -> list[Group]:
    """Stack crops of equal shape; groups come in order of their first crop."""
    groups: dict[tuple[int, int, int], list[Crop]] = {}
    for crop in crops:
        groups.setdefault(crop.key, []).append(crop)
    return [Group(np.stack([c.x for c in g]), np.stack([c.target for c in g]),
                  np.stack([c.features for c in g]).astype(np.float32),
                  np.array([c.speaker for c in g], np.int64), g[0].frame_offset,
                  None if g[0].gc is None else np.stack([c.gc for c in g]).astype(np.float32))
            for g in groups.values()]


class CropSampler:
    """Seeded random crops: utterance with probability proportional to its length, then
    a uniform start frame. Its whole state is one numpy ``PCG64`` state (a dict),
    checkpointed with the model so that a resumed run draws the same crops. Subclasses
    for other models change only :attr:`crop` (utterance, start frame, crop frames,
    config) -> crop."""

    crop = staticmethod(make_crop)

    def __init__(self, utterances: list[Utterance], cfg: WaveNetConfig, crop_frames: int,
                 batch_size: int, seed: int):
        if not utterances:
            raise VocoderError("no training utterances to sample crops from")
        self.utterances = utterances
        self.cfg = cfg
        self.crop_frames = crop_frames
        self.batch_size = batch_size
        lengths = np.array([u.n_frames for u in utterances], np.float64)
        self._p = lengths / lengths.sum()
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def next_batch(self) -> list[Crop]:
        crops = []
        for _ in range(self.batch_size):
            utt = self.utterances[int(self.rng.choice(len(self.utterances), p=self._p))]
            span = utt.n_frames - min(self.crop_frames, utt.n_frames)
            start = int(self.rng.integers(0, span + 1))
            crops.append(self.crop(utt, start, self.crop_frames, self.cfg))
        return crops

    def state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def set_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state


@dataclass
class TrainData:
    """A loaded dataset: normalised train/test utterances and what the bundle records.

    ``spec`` is None for a dataset without frame features."""

    dataset: Any  # vocoder.data.corpus.Dataset: its directory, corpus.json and manifest
    spec: FeatureSpec | None
    train: list[Utterance]
    test: list[Utterance]

    @property
    def root(self) -> Path:
        return self.dataset.root

    @property
    def info(self) -> dict[str, Any]:
        return self.dataset.info

    @property
    def sample_rate(self) -> int:
        return self.dataset.sample_rate

    @property
    def hop_length(self) -> int:
        return self.dataset.hop_length

    @property
    def n_speakers(self) -> int:
        return len(self.dataset.speakers)

    @property
    def feature_dim(self) -> int:
        return self.spec.dim if self.spec is not None else 0

    @property
    def tags(self) -> list[str]:
        """Names of the gc vector's entries ([] for an untagged dataset)."""
        return self.dataset.tags

    def for_model(self, cfg: WaveNetConfig) -> TrainData:
        """The data as the model reads it: with the frame-phase column appended to every
        utterance's features when the model has an F0 excitation input."""
        if not cfg.excitation:
            return self

        def add(u: Utterance) -> Utterance:
            return dataclasses.replace(u, features=with_phase(u.features, cfg))

        return dataclasses.replace(self, train=[add(u) for u in self.train],
                                   test=[add(u) for u in self.test])

    def check_model(self, cfg: WaveNetConfig) -> None:
        """Raise if the model cannot be trained on this data."""
        if cfg.sample_rate != self.sample_rate:
            raise VocoderError(f"the model is at {cfg.sample_rate} Hz but the dataset "
                               f"{self.root} is at {self.sample_rate} Hz")
        if cfg.hop_length != self.hop_length:
            # Without local conditioning the hop is still the unit training crops are cut in.
            raise VocoderError(f"the model's hop (product of upsample_scales "
                               f"{list(cfg.upsample_scales)} = {cfg.hop_length}) differs "
                               f"from the dataset's hop_length {self.hop_length}: give "
                               f"a --config whose upsample_scales multiply to "
                               f"{self.hop_length}"
                               + ("" if cfg.cond_channels else " (a model without local "
                                  "conditioning still cuts its training crops in frames)"))
        if cfg.cond_channels != self.feature_dim:
            raise VocoderError(f"the model has cond_channels={cfg.cond_channels}, the "
                               f"dataset has {self.feature_dim} features")
        if cfg.n_speakers < self.n_speakers:
            raise VocoderError(f"the model has n_speakers={cfg.n_speakers}, the dataset "
                               f"has {self.n_speakers} speakers")
        if cfg.gc_channels != len(self.tags):
            raise VocoderError(f"the model has gc_channels={cfg.gc_channels}, the dataset "
                               f"has {len(self.tags)} tags"
                               + (f" ({', '.join(self.tags)})" if self.tags else ""))


def _load_dataset(directory: Path):
    try:
        from vocoder.data.corpus import load_manifest
    except ModuleNotFoundError as e:  # pragma: no cover - the corpus module ships with us
        raise VocoderError(f"cannot read datasets: {e}") from None
    return load_manifest(directory)


def load_train_data(directory: str | Path, quantization_channels: int = 256,
                    max_test: int | None = None, spec: FeatureSpec | None = None,
                    preemphasis: float = 0.0) -> TrainData:
    """Read, validate and preload a dataset directory (format: :mod:`vocoder.data.corpus`).

    Features are normalised with statistics fitted on the train split (binary
    dimensions left alone), or with ``spec`` when given (a resumed run keeps its own
    normalisation; the data must give matching statistics). ``max_test`` caps the
    preloaded test utterances. A dataset without frame features gives (Tf, 0) features
    and ``spec`` None; a tagged one gives every utterance its multi-hot ``gc``. The audio
    is kept as the classes the model reads: mu-law of the waveform pre-emphasised by
    ``preemphasis`` (the model config's).
    """
    directory = Path(directory)
    ds = _load_dataset(directory)
    train_entries, test_entries = ds.split("train"), ds.split("test")
    if not train_entries:
        raise VocoderError(f"{directory}: the dataset has no utterance in the train split")
    if max_test is not None:
        test_entries = test_entries[:max_test]
    raw = {e.id: ds.load(e) for e in [*train_entries, *test_entries]}
    fitted = FeatureSpec.fit(ds.feature_names, ds.hop_length,
                             [raw[e.id][1] for e in train_entries], list(map(bool, ds.binary)),
                             mel=ds.mel) if ds.has_features else None
    if spec is not None and (fitted is None or not spec.matches(fitted)):
        raise VocoderError(f"{directory}: the dataset's features or their statistics differ "
                           "from the ones the run was started with (--resume on different "
                           "data?)")
    spec = spec if spec is not None else fitted
    dtype = np.uint8 if quantization_channels <= 256 else np.int32

    def utterance(e) -> Utterance:
        audio, feats = raw[e.id]
        if feats.shape[0] == 0:
            raise VocoderError(f"utterance {e.id!r}: no feature frames" if ds.has_features
                               else f"utterance {e.id!r}: {e.wav} holds no audio")
        classes = audio_to_classes(audio, quantization_channels, preemphasis)
        return Utterance(e.id, e.speaker, classes.astype(dtype),
                         spec.normalize(feats) if spec is not None else feats, ds.gc(e))

    return TrainData(ds, spec, [utterance(e) for e in train_entries],
                     [utterance(e) for e in test_entries])


def shard(utterances: list[Utterance], rank: int, world: int) -> list[Utterance]:
    """This process's share of the training utterances under DDP (round robin)."""
    if len(utterances) < world:
        raise VocoderError(f"{len(utterances)} training utterances cannot be shared by "
                           f"{world} processes")
    return utterances[rank::world]
