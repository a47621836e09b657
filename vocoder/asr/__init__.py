"""The speech-recognition WaveNet (van den Oord et al. 2016, section 3.4): the dilated
stack on raw audio, mean pooling to 10 ms frames, non-causal frame convolutions, trained
to classify each frame's phone and to predict the next sample.

``config`` (ASRConfig, ASRTrainConfig), ``labels`` (frame labels from a dataset's phone
alignment), ``data`` (crops), ``model`` (ASRWaveNet), ``train`` (the loop), ``bundle``,
``metrics`` (edit distance, PER) and ``recognize`` (segments, evaluation). The commands
are ``vocoder train-asr``, ``vocoder recognize`` and ``vocoder evaluate-asr``. Importing
this package does not import torch.
"""

from vocoder.asr.config import ASRConfig, ASRTrainConfig

__all__ = ["ASRConfig", "ASRTrainConfig"]
