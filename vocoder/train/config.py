"""Training settings as one frozen dataclass, separate from the architecture.

A preset file (``vocoder train --config preset.json``) holds both::

    {"model": {WaveNetConfig fields}, "train": {TrainConfig fields}}

``cond_channels``, ``n_speakers`` and ``gc_channels`` may be left out of "model":
training fills them in from the dataset's ``corpus.json`` (feature dimension, number of
speakers, number of tags).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vocoder.config import WaveNetConfig, dataclass_from_dict
from vocoder.errors import VocoderError

SCHEDULES = ("cosine", "exponential", "constant")
AMP_MODES = ("off", "bf16", "fp16")


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the model's shape lives in :class:`~vocoder.config.WaveNetConfig`).

    Learning rate: linear warm-up from 0 over ``warmup_steps``, then ``schedule``:
    "cosine" decays to ``lr * min_lr_ratio`` at ``steps``; "exponential" multiplies by
    ``decay_rate`` every ``decay_steps`` steps (continuously), floored at
    ``lr * min_lr_ratio``; "constant" keeps ``lr``.

    ``ema_decay`` > 0 keeps an exponential moving average of the weights (its decay ramps
    up over the first steps; see :class:`vocoder.train.trainer.EMA`); the bundle then
    gets the averaged weights.

    A batch is ``batch_size`` random crops of ``crop_frames`` frames each (per process
    under DDP), plus receptive-field context that gets no loss.

    ``input_noise`` > 0 is FFTNet's injected noise: Gaussian noise with that standard
    deviation, in mu-law classes, is added to the previous-sample input (rounded and
    clipped to a class) while the targets stay clean, so that the model learns to predict
    from a past as imperfect as its own samples are when it runs free
    (:mod:`vocoder.train.noise`). Validation NLL is always measured on clean input.
    """

    batch_size: int = 8
    crop_frames: int = 40
    lr: float = 1e-3
    warmup_steps: int = 200
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05
    decay_rate: float = 0.5
    decay_steps: int = 20000
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    ema_decay: float = 0.0
    steps: int = 20000
    log_every: int = 50
    val_every: int = 1000
    val_utterances: int = 8
    checkpoint_every: int = 1000
    keep_last: int = 3
    seed: int = 0
    num_workers: int = 0
    amp: str = "bf16"
    input_noise: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        self._validate()

    def _validate(self) -> None:
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise VocoderError(f"invalid TrainConfig: {msg}")

        for name in ("batch_size", "crop_frames", "warmup_steps", "decay_steps", "steps",
                     "log_every", "val_every", "val_utterances", "checkpoint_every",
                     "keep_last", "seed", "num_workers"):
            value = getattr(self, name)
            need(isinstance(value, int) and not isinstance(value, bool),
                 f"{name} must be an int, got {value!r}")
        for name in ("lr", "min_lr_ratio", "decay_rate", "weight_decay", "grad_clip",
                     "ema_decay", "input_noise"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and not isinstance(value, bool),
                 f"{name} must be a number, got {value!r}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.crop_frames >= 1, f"crop_frames must be >= 1, got {self.crop_frames}")
        need(self.lr > 0, f"lr must be > 0, got {self.lr}")
        need(self.warmup_steps >= 0, "warmup_steps must be >= 0")
        need(self.schedule in SCHEDULES, f"schedule must be one of {SCHEDULES}, "
             f"got {self.schedule!r}")
        need(0 <= self.min_lr_ratio <= 1, "min_lr_ratio must be in [0, 1]")
        need(0 < self.decay_rate <= 1, "decay_rate must be in (0, 1]")
        need(self.decay_steps >= 1, "decay_steps must be >= 1")
        need(self.weight_decay >= 0, "weight_decay must be >= 0")
        need(len(self.adam_betas) == 2 and all(0 <= b < 1 for b in self.adam_betas),
             f"adam_betas must be two numbers in [0, 1), got {self.adam_betas}")
        need(self.grad_clip >= 0, "grad_clip must be >= 0 (0 = no clipping)")
        need(0 <= self.ema_decay < 1, "ema_decay must be in [0, 1) (0 = no EMA)")
        need(self.input_noise >= 0, "input_noise must be >= 0 (a standard deviation in "
             f"mu-law classes; 0 = clean input), got {self.input_noise}")
        need(self.steps >= 1, f"steps must be >= 1, got {self.steps}")
        for name in ("log_every", "val_every", "checkpoint_every", "keep_last"):
            need(getattr(self, name) >= 1, f"{name} must be >= 1")
        need(self.val_utterances >= 0, "val_utterances must be >= 0")
        # Crops are numpy slices of audio preloaded in memory: worker processes would add
        # overhead and make the sampler state harder to checkpoint, so there are none.
        need(self.num_workers == 0, "num_workers must be 0 (data is preloaded; crops are "
             "slices made in the training process)")
        need(self.amp in AMP_MODES, f"amp must be one of {AMP_MODES}, got {self.amp!r} "
             "(used on GPU only)")

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["adam_betas"] = list(self.adam_betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        return dataclass_from_dict(cls, d, "train config")

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Preset:
    """A preset file: model fields (possibly without the dataset-given ones) + training."""

    model: dict[str, Any]
    train: TrainConfig

    def model_config(self, cond_channels: int, n_speakers: int,
                     gc_channels: int = 0) -> WaveNetConfig:
        """The WaveNetConfig for a dataset with ``cond_channels`` features,
        ``n_speakers`` speakers and ``gc_channels`` tags; a value given in the preset must
        agree with the data."""
        fields = dict(self.model)
        for name, value in (("cond_channels", cond_channels), ("n_speakers", n_speakers),
                            ("gc_channels", gc_channels)):
            given = fields.get(name)
            if given is not None and given != value:
                raise VocoderError(f"preset says {name}={given} but the dataset has {value}")
            fields[name] = value
        return WaveNetConfig.from_dict(fields)


def read_preset_json(path: Path, model_fields: str) -> dict:
    """A preset file's JSON: an object with "model" (an object of ``model_fields``),
    "train" and optionally "comment"; a VocoderError naming the file otherwise."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise VocoderError(f"preset not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise VocoderError(f"{path}: cannot read a JSON preset ({e})") from None
    if not isinstance(doc, dict) or not set(doc) <= {"model", "train", "comment"}:
        raise VocoderError(f"{path}: a preset is a JSON object with keys \"model\" "
                           f"({model_fields} fields) and \"train\" (and optionally "
                           f"\"comment\")")
    if not isinstance(doc.get("model", {}), dict):
        raise VocoderError(f"{path}: \"model\" must be an object of {model_fields} fields")
    return doc


def load_preset(path: str | Path | None) -> Preset:
    """Read a preset JSON; ``None`` gives the built-in defaults (the demo architecture)."""
    if path is None:
        return Preset({}, TrainConfig())
    path = Path(path)
    doc = read_preset_json(path, "WaveNetConfig")
    model = doc.get("model", {})
    try:
        train = TrainConfig.from_dict(doc.get("train", {}))
        # Validate the model part now (with placeholders for the dataset-given fields), so
        # that a typo fails before the data is loaded.
        # (An excitation input needs local conditioning; F0's columns come from the data.)
        Preset(model, train).model_config(
            model.get("cond_channels") or (1 if model.get("excitation") else 0),
            model.get("n_speakers") or 0, model.get("gc_channels") or 0)
    except VocoderError as e:
        raise VocoderError(f"{path}: {e}") from None
    return Preset(model, train)
