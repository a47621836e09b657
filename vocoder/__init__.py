"""vocoder: a WaveNet neural vocoder.

The public surface is :class:`Vocoder`, :class:`WaveNetConfig`, :class:`VocoderError` and
the ``vocoder`` command. Importing the package does not import torch.
"""

from vocoder.config import WaveNetConfig
from vocoder.errors import VocoderError

__version__ = "0.1.0"
__all__ = ["Vocoder", "WaveNetConfig", "VocoderError", "__version__"]


def __getattr__(name):
    if name == "Vocoder":
        from vocoder.api import Vocoder

        return Vocoder
    raise AttributeError(f"module 'vocoder' has no attribute {name!r}")
