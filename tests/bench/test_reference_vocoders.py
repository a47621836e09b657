"""bench.reference_vocoders on tones: the copies are scored with evaluate's measures, and
the scores order as they must (the mu-law copy voiced as the tone, noise excitation
never voiced)."""

from __future__ import annotations

import json

from bench import reference_vocoders
from tests.train.synth import write_dataset


def test_the_copies_of_a_voiced_recording_score_in_order(tmp_path):
    data = write_dataset(tmp_path / "d", n_train=1, n_test=1, frames=200, hop=80,
                         noise=0.002)
    out = tmp_path / "r.json"
    assert reference_vocoders.main(["--data", str(data), "--n", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    c = res["copies"]
    assert res["utterances"] == ["utt001"]
    assert set(c) == {"mulaw8", "mulaw8-preemphasis-0.85", "world", "world-noise"}
    # (STOI is not meaningful on a tone's flat envelope; it is only checked to be there.)
    assert all(0.0 <= r["stoi_mean"] <= 1.0 for r in c.values())
    assert c["mulaw8"]["vuv_error_rate"] < 0.05
    # Noise excitation loses the voicing of a tone that is voiced nine tenths of the time.
    assert c["world-noise"]["vuv_error_rate"] > 0.5
    assert c["world"]["vuv_error_rate"] < c["world-noise"]["vuv_error_rate"]
    assert c["mulaw8"]["mcd_db"] < c["world-noise"]["mcd_db"]
