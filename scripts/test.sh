#!/usr/bin/env bash
# Set up a fresh Debian machine for the tests (as root), then lint and test.
# This is the README's test command, and exactly what CI (.ci/run) runs.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries: eSpeak NG (corpus, `say`), PortAudio + PulseAudio (live playback tests
# against a clocked null sink; the test fixture starts the daemon), FluidSynth and a GM
# soundfont (the music corpus).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    espeak-ng libportaudio2 pulseaudio libasound2-plugins fluidsynth fluid-soundfont-gm \
    >/dev/null
fi

# torch first, pinned: a plain `torch` requirement would pull a multi-GB CUDA build.
python3 -m pip install -q --disable-pip-version-check torch==2.13.0
python3 -m pip install -q --disable-pip-version-check -e ".[dev,fast,features,audio,bench,gpu,eval,music]"

python3 -m ruff check .
python3 -m pytest -q
