"""What the music corpus tests need: FluidSynth, a GM soundfont, mido and soxr."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from vocoder.data.music import DEFAULT_SOUNDFONT


def _missing() -> str | None:
    if shutil.which("fluidsynth") is None:
        return "fluidsynth missing (apt-get install fluidsynth)"
    if not Path(DEFAULT_SOUNDFONT).is_file():
        return f"{DEFAULT_SOUNDFONT} missing (apt-get install fluid-soundfont-gm)"
    for module in ("mido", "soxr"):
        if importlib.util.find_spec(module) is None:
            return f"{module} missing (pip install -e .[music])"
    return None


needs_fluidsynth = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
