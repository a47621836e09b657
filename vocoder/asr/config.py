"""The speech-recognition WaveNet's architecture and training settings, as frozen values,
and the one place that knows its geometry (receptive field, frame grid, frame context).

A preset file (``vocoder train-asr --config preset.json``) holds both::

    {"model": {ASRConfig fields}, "train": {ASRTrainConfig fields}}

``n_phones`` may be left out of "model": training fills it in from the data's phone
inventory.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vocoder.config import WaveNetConfig, dataclass_from_dict, receptive_field
from vocoder.errors import VocoderError
from vocoder.train.config import TrainConfig, read_preset_json


@dataclass(frozen=True)
class ASRConfig:
    """WaveNet as a frame classifier (van den Oord et al. 2016, section 3.4).

    The dilated stack (``residual_channels`` .. ``dilation_limit``, as in
    :class:`~vocoder.config.WaveNetConfig`, unconditioned) reads the previous sample's
    mu-law class at every position. Its summed skip connections feed two outputs: the
    usual head, predicting the next sample (the auxiliary loss), and a mean-pooling layer
    over ``frame_hop`` samples (10 ms at 16 kHz by default), followed by ``frame_layers``
    non-causal convolutions of kernel ``frame_kernel`` and width ``frame_channels`` (ReLU)
    and a 1x1 convolution to ``n_phones`` classes, one of them silence.
    """

    sample_rate: int = 16000
    quantization_channels: int = 256
    residual_channels: int = 16
    gate_channels: int = 32
    skip_channels: int = 32
    layers: int = 10
    stacks: int = 1
    dilation_limit: int = 512
    frame_hop: int = 160
    frame_channels: int = 64
    frame_layers: int = 3
    frame_kernel: int = 5
    n_phones: int = 2

    def __post_init__(self) -> None:
        for name in ("frame_hop", "frame_channels", "frame_layers", "frame_kernel",
                     "n_phones"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"invalid ASRConfig: {name} must be an int, got {value!r}")
        if self.frame_hop < 1:
            raise ValueError(f"invalid ASRConfig: frame_hop must be >= 1, got {self.frame_hop}")
        if self.frame_channels < 1 or self.frame_layers < 0:
            raise ValueError("invalid ASRConfig: frame_channels must be >= 1 and "
                             "frame_layers >= 0")
        if self.frame_kernel < 1 or self.frame_kernel % 2 == 0:
            raise ValueError(f"invalid ASRConfig: frame_kernel must be odd (centred, "
                             f"non-causal), got {self.frame_kernel}")
        if self.n_phones < 2:
            raise ValueError(f"invalid ASRConfig: n_phones must be >= 2 (silence and at "
                             f"least one phone), got {self.n_phones}")
        try:
            self.stack_config()
        except ValueError as e:
            raise ValueError(str(e).replace("WaveNetConfig", "ASRConfig")) from None

    def stack_config(self) -> WaveNetConfig:
        """The dilated stack as an unconditioned :class:`~vocoder.config.WaveNetConfig`."""
        return WaveNetConfig(
            sample_rate=self.sample_rate, quantization_channels=self.quantization_channels,
            residual_channels=self.residual_channels, gate_channels=self.gate_channels,
            skip_channels=self.skip_channels, layers=self.layers, stacks=self.stacks,
            dilation_limit=self.dilation_limit, cond_channels=0)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ASRConfig:
        return dataclass_from_dict(cls, d, "ASR model config")

    def replace(self, **changes: Any) -> ASRConfig:
        return dataclasses.replace(self, **changes)


def stack_receptive_field(cfg: ASRConfig) -> int:
    """Samples the stack's output at t depends on: ``x[t - rf + 1 .. t]``."""
    return receptive_field(cfg.stack_config())


def frame_context(cfg: ASRConfig) -> int:
    """Frames each side that one frame's logits depend on (the non-causal convolutions)."""
    return cfg.frame_layers * (cfg.frame_kernel // 2)


def n_frames(n_samples: int, cfg: ASRConfig) -> int:
    """Frames of ``n_samples`` of audio: the audio is zero-padded to whole frames."""
    return max(1, math.ceil(n_samples / cfg.frame_hop))


@dataclass(frozen=True)
class ASRTrainConfig(TrainConfig):
    """:class:`~vocoder.train.config.TrainConfig` with the speech-recognition defaults and
    ``aux_weight``, the weight of the next-sample loss (bits are not compared: both terms
    are mean cross-entropies in nats, per frame and per sample). 0 trains the frame
    classifier alone and skips the sample head. ``crop_frames`` counts ASR frames
    (``frame_hop`` samples); ``amp`` is not used (train-asr runs in float32)."""

    batch_size: int = 4
    crop_frames: int = 32
    lr: float = 2e-3
    warmup_steps: int = 50
    steps: int = 2000
    log_every: int = 25
    val_every: int = 500
    val_utterances: int = 8
    checkpoint_every: int = 250
    amp: str = "off"
    aux_weight: float = 1.0

    def _validate(self) -> None:
        super()._validate()
        w = self.aux_weight
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) \
                or w < 0:
            raise VocoderError(f"invalid ASRTrainConfig: aux_weight must be a number >= 0, "
                               f"got {w!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ASRTrainConfig:
        return dataclass_from_dict(cls, d, "ASR train config")


@dataclass(frozen=True)
class ASRPreset:
    """A preset file: model fields (``n_phones`` may be missing) + training settings."""

    model: dict[str, Any]
    train: ASRTrainConfig

    def model_config(self, n_phones: int) -> ASRConfig:
        """The config for data with ``n_phones`` classes; a preset's value must agree."""
        given = self.model.get("n_phones")
        if given is not None and given != n_phones:
            raise VocoderError(f"preset says n_phones={given} but the data's inventory has "
                               f"{n_phones}")
        return ASRConfig.from_dict({**self.model, "n_phones": n_phones})


def load_asr_preset(path: str | Path | None) -> ASRPreset:
    """Read a preset JSON; ``None`` gives the built-in defaults."""
    if path is None:
        return ASRPreset({}, ASRTrainConfig())
    path = Path(path)
    doc = read_preset_json(path, "ASRConfig")
    model = doc.get("model", {})
    try:
        train = ASRTrainConfig.from_dict(doc.get("train", {}))
        ASRPreset(model, train).model_config(model.get("n_phones", 2))  # fail early on typos
    except VocoderError as e:
        raise VocoderError(f"{path}: {e}") from None
    return ASRPreset(model, train)
