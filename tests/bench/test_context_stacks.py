"""bench.context_stacks: both models trained and scored; silencing the past beyond a
model's receptive field changes nothing."""

from __future__ import annotations

import json

import torch

from bench import context_stacks
from tests.train.synth_tags import write_tagged_dataset


def test_main_trains_both_and_measures_how_far_back_each_reads(tmp_path):
    data = write_tagged_dataset(tmp_path / "d", n_train=4, n_test=2, samples=8000, hop=80)
    out = tmp_path / "r.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert context_stacks.main(["--data", str(data), "--steps", "2", "--batch", "2",
                                    "--crop-frames", "2", "--past", "2400", "--window",
                                    "16", "--stride", "2500", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(out.read_text())
    ctx, deeper = report["models"]["context"], report["models"]["deeper"]
    assert ctx["receptive_field_samples"] > 2000 > deeper["receptive_field_samples"] == 256
    # about the same compute per sample
    assert abs(ctx["mflops_per_sample"] / deeper["mflops_per_sample"] - 1) < 0.1
    for m in (ctx, deeper):
        assert m["steps"] == 2 and m["scored_samples"] == 2 * 3 * 16
        assert 0 < m["heldout_nll_bits"] < 12
    # the deeper model cannot see past its receptive field: silencing there is no change
    beyond = {n: v for n, v in deeper["nll_increase_when_silenced_beyond_n"].items()
              if int(n) >= 256}
    assert beyond and all(v == 0 for v in beyond.values())
    assert ctx["nll_increase_when_silenced_beyond_n"]["16"] != 0
