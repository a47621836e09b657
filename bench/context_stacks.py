"""What a context stack buys (WaveNet paper, section 2.6): two small models trained on the
same data for the same number of steps at about the same compute per sample,

* ``context``: a main stack with a short receptive field plus a context stack that reads
  the past in blocks of ``context_pool`` samples;
* ``deeper``: the same main stack, deeper (longer dilations) and without a context stack,
  at about the same MFLOPs per sample (:func:`vocoder.config.flops_per_sample`),

and reports the teacher-forced held-out NLL of both, and how far back each one's
predictions depend on the past: the held-out NLL when the inputs more than N samples
before a scored window are replaced by silence, for several N. A model is unaffected by
silencing beyond its receptive field, so the N at which the NLL stops changing is the
longest structure it keeps.

    OMP_NUM_THREADS=1 python -m bench.context_stacks --data /tmp/ctx-music --steps 2000 \\
        [--out bench/results/context-stacks.json]

Scoring: windows of ``--window`` samples on the test split, each preceded by ``--past``
samples of input (longer than either model's receptive field; windows start on a
block boundary, so the crop's logits are the whole clip's). For a given N the inputs
more than N samples before the window's first sample are the silence class; the window's
own samples then see between N and N + window - 1 samples of real past.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench import RESULTS
from bench.report import write_json

#: The main stack both models share: 6 layers of dilations 1..32 (receptive field 64).
MAIN = dict(residual_channels=16, gate_channels=32, skip_channels=32, layers=6, stacks=1,
            dilation_limit=32)
MODELS: dict[str, dict[str, Any]] = {
    # blocks of 16 samples, 7 layers of dilations 1..64: 128 blocks = 2,048 samples back
    "context": {**MAIN, "context_pool": 16, "context_channels": 32, "context_layers": 7,
                "context_dilation_limit": 64},
    # two more layers (dilations 64, 128): receptive field 256
    "deeper": {**MAIN, "layers": 8, "dilation_limit": 128},
}
BACKS = (16, 64, 256, 512, 1024, 2048)


def _train(name: str, fields: dict[str, Any], data: Path, steps: int, work: Path,
           batch: int, crop_frames: int, lr: float) -> tuple[Any, dict[str, Any]]:
    from vocoder.bundle import load_bundle
    from vocoder.train import Preset, TrainConfig, train

    tcfg = TrainConfig(batch_size=batch, crop_frames=crop_frames, lr=lr,
                       warmup_steps=min(50, steps // 10), steps=steps,
                       log_every=max(1, steps // 10), val_every=steps,
                       checkpoint_every=steps, val_utterances=4, seed=0)
    t = time.perf_counter()
    res = train(data, work / name, Preset(dict(fields), tcfg), export=False,
                progress=False, device="cpu")
    wall = time.perf_counter() - t
    model = load_bundle(res.bundle).build_model()
    return model, {"train_wall_s": round(wall, 1), "steps": res.step,
                   "val_bits_whole_clips": round(res.metrics.get("val_bits", float("nan")), 4),
                   "train_samples_per_s": round(res.samples_per_s)}


def windows(test, cfg_block: int, past: int, window: int, stride: int):
    """(utterance index, first scored sample) of every window: block-aligned, with
    ``past`` samples before it."""
    out = []
    for i, u in enumerate(test):
        for s in range(past, len(u.classes) - window + 1, stride):
            out.append((i, s - s % cfg_block))
    return out


def nll_bits(model, test, wins, past: int, window: int, back: int | None,
             batch: int = 64) -> float:
    """Mean NLL in bits per sample over ``wins`` with the inputs more than ``back``
    samples before each window silenced (None: the whole ``past``)."""
    import torch

    from vocoder.mulaw import silence_class

    cfg = model.cfg
    sil = silence_class(cfg.quantization_channels)
    total, count = 0.0, 0
    for k in range(0, len(wins), batch):
        xs, ts, gcs = [], [], []
        for i, s in wins[k:k + batch]:
            c = test[i].classes.astype(np.int64)
            a = s - past
            x = np.concatenate([[sil], c[:-1]])[a:s + window].copy()  # previous classes
            if back is not None and back < past:
                x[: past - back] = sil
            xs.append(x)
            ts.append(c[s:s + window])
            gcs.append(test[i].gc)
        gc = None if gcs[0] is None else torch.from_numpy(np.stack(gcs).astype(np.float32))
        with torch.no_grad():
            logits = model(torch.from_numpy(np.stack(xs)), gc=gc, keep=window,
                           channels_last=True)
            nll = torch.nn.functional.cross_entropy(
                logits.flatten(0, 1), torch.from_numpy(np.stack(ts)).flatten(),
                reduction="sum")
        total += float(nll)
        count += len(xs) * window
    return total / count / np.log(2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="a corpus without frame features "
                    "(e.g. `vocoder corpus music`)")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--crop-frames", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--past", type=int, default=4096)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--stride", type=int, default=500)
    ap.add_argument("--out", default=str(RESULTS / "context-stacks.json"))
    args = ap.parse_args(argv)

    import torch

    from vocoder.config import WaveNetConfig, flops_per_sample, receptive_field
    from vocoder.train.data import load_train_data

    torch.manual_seed(0)
    data = Path(args.data)
    test = load_train_data(data).test
    if not test:
        raise SystemExit(f"{data}: no test split to score")
    report: dict[str, Any] = {
        "command": "OMP_NUM_THREADS=1 python -m bench.context_stacks " + " ".join(
            argv if argv is not None else os.sys.argv[1:]),
        "data": str(data), "test_clips": len(test), "past": args.past,
        "window": args.window, "backs": list(BACKS), "models": {},
    }
    with tempfile.TemporaryDirectory() as work:
        for name, fields in MODELS.items():
            model, facts = _train(name, fields, data, args.steps, Path(work), args.batch,
                                  args.crop_frames, args.lr)
            model.eval()
            cfg: WaveNetConfig = model.cfg
            assert receptive_field(cfg) <= args.past, "--past must cover the receptive field"
            wins = windows(test, cfg.context_pool or 1, args.past, args.window, args.stride)
            full = nll_bits(model, test, wins, args.past, args.window, None)
            silenced = {str(n): round(nll_bits(model, test, wins, args.past, args.window, n)
                                      - full, 4) for n in BACKS}
            report["models"][name] = {
                "config": {k: v for k, v in cfg.to_dict().items() if k in fields},
                "mflops_per_sample": round(flops_per_sample(cfg) / 1e6, 4),
                "receptive_field_samples": receptive_field(cfg),
                "heldout_nll_bits": round(full, 4),
                "nll_increase_when_silenced_beyond_n": silenced,
                "scored_samples": len(wins) * args.window, **facts,
            }
            print(name, json.dumps(report["models"][name]), flush=True)
    write_json(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
