"""The shipped speech-recognition bundle on the shipped example: what README's
`vocoder recognize` example runs."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from vocoder.asr.bundle import load_asr_bundle
from vocoder.asr.metrics import edit_distance
from vocoder.asr.recognize import recognize_file

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "asr-demo"
WAV = ROOT / "examples" / "demo-0.wav"
# The corpus alignment of this utterance (silence removed), as README quotes it.
REFERENCE = ("p l i: z k a tS D @2 s t r eI n dZ z i: b r @ b I# f o@ T i: ; oU b r I N z "
             "I t").split()


def test_demo_bundle_loads_with_its_inventory():
    b = load_asr_bundle(DEMO)
    assert b.phones[0] == "_" and len(b.phones) == b.config.n_phones
    assert b.training["train_config"]["aux_weight"] > 0
    assert (DEMO / "model.safetensors").stat().st_size < 3_000_000


def test_example_wav_is_recognised_far_better_than_chance():
    segments = recognize_file(DEMO, WAV, switch_penalty=8.0)
    assert segments[0].start == 0.0
    assert abs(segments[-1].end - sf.info(str(WAV)).frames / 16000) < 1e-6
    hyp = [s.phone for s in segments if s.phone != "_"]
    # Chance (a constant phone) needs len(REFERENCE) - 1 edits; the model needed 15.
    assert edit_distance(REFERENCE, hyp) <= 0.5 * len(REFERENCE)
