"""Training: ``TrainConfig`` and presets (``config``), crops (``data``), the loop
(``trainer``). ``vocoder train`` is the command-line entry point."""

from vocoder.train.config import Preset, TrainConfig, load_preset
from vocoder.train.trainer import TrainResult, train

__all__ = ["Preset", "TrainConfig", "TrainResult", "load_preset", "train"]
