"""The speech-recognition WaveNet with and without the auxiliary next-sample loss, side by
side: frame accuracy and phone error rate of each run's bundle on the test split, next to
two trivial baselines.

    python -m bench.asr_aux_loss --data data/espeak \\
        --run aux=runs/asr-aux --run no-aux=runs/asr-noaux \\
        [--command "..."]... [--out bench/results/asr-aux-loss.json]

Each run is a ``vocoder train-asr`` run directory (its ``bundle/`` and ``log.csv``). Every
run is scored twice: frame-wise argmax, and the best path with a phone-switch penalty
(:mod:`vocoder.asr.decode`) chosen per run from ``--penalties`` on the first
``--tune-utterances`` utterances of the *training* split (the test split is not looked at
to choose it). The baselines label every test frame with silence, or with the phone most
frequent in the training split: what a recogniser that learnt nothing from the audio
scores.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import RESULTS
from bench.report import write_json


def baselines(data_dir: str | Path, bundle: str | Path) -> dict[str, dict[str, float]]:
    """Frame accuracy and PER of constant predictions on the test split."""
    from vocoder.asr.bundle import load_asr_bundle
    from vocoder.asr.data import load_asr_data
    from vocoder.asr.labels import SILENCE
    from vocoder.asr.metrics import edit_counts, phone_sequence

    b = load_asr_bundle(bundle)
    data = load_asr_data(data_dir, b.config, phones=b.phones)
    counts = Counter(p for u in data.train for p in u.phones)
    common = next(p for p, _ in counts.most_common() if p != SILENCE)
    out = {}
    for name, phone in (("all silence", SILENCE), (f"always {common!r}", common)):
        frames = sum(u.n_frames for u in data.test)
        correct = sum(sum(p == phone for p in u.phones) for u in data.test)
        refs = [phone_sequence(u.phones, SILENCE) for u in data.test]
        hyp = [] if phone == SILENCE else [phone]
        edits = sum(edit_counts(r, hyp).total for r in refs)
        out[name] = {"frame_accuracy": round(correct / frames, 4),
                     "per": round(edits / sum(len(r) for r in refs), 4)}
    return out


def choose_penalty(bundle: str | Path, data_dir: str | Path, n: int,
                   penalties: list[float]) -> tuple[float, dict[str, float]]:
    """The penalty with the lowest PER on the first ``n`` training utterances, and the
    PER of each."""
    from vocoder.asr.bundle import load_asr_bundle
    from vocoder.asr.data import load_asr_data
    from vocoder.asr.decode import best_path
    from vocoder.asr.labels import SILENCE
    from vocoder.asr.metrics import phone_error_rate, phone_sequence
    from vocoder.asr.recognize import frame_logits

    b = load_asr_bundle(bundle)
    utts = load_asr_data(data_dir, b.config, phones=b.phones, splits=("train",)).train[:n]
    log_probs = [frame_logits(b.model, u.classes).log_softmax(-1).numpy() for u in utts]
    refs = [phone_sequence(u.phones, SILENCE) for u in utts]
    per = {}
    for penalty in penalties:
        hyps = [phone_sequence([b.phones[k] for k in best_path(lp, penalty)], SILENCE)
                for lp in log_probs]
        per[f"{penalty:g}"] = round(phone_error_rate(list(zip(refs, hyps))), 4)
    best = min(penalties, key=lambda v: per[f"{v:g}"])
    return best, per


def _last_log_row(run: Path) -> dict[str, str]:
    with open(run / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["frame_loss"]]
    return rows[-1] if rows else {}


def _scores(res: dict[str, Any]) -> dict[str, Any]:
    return {"frame_accuracy": round(res["frame_accuracy"], 4), "per": round(res["per"], 4),
            "edits": {k: res[k] for k in ("substitutions", "deletions", "insertions")}}


def run(data: str, runs: dict[str, Path], commands: list[str], penalties: list[float],
        tune_utterances: int) -> dict[str, Any]:
    import torch

    from vocoder.asr.bundle import load_asr_bundle
    from vocoder.asr.recognize import evaluate_asr
    from vocoder.machine import cpu_model

    results = {}
    for name, path in runs.items():
        bundle = path / "bundle"
        penalty, tuning = choose_penalty(bundle, data, tune_utterances, penalties)
        plain = evaluate_asr(bundle, data, progress=False)
        smooth = evaluate_asr(bundle, data, switch_penalty=penalty, progress=False)
        training = load_asr_bundle(bundle).training
        last = _last_log_row(path)
        results[name] = {
            "run": str(path), "aux_weight": training["train_config"]["aux_weight"],
            "steps": training["steps"], "train_time_s": training["time_s"],
            "train_frame_loss_last": float(last["frame_loss"]) if last else None,
            "train_sample_bits_last": float(last["sample_bits"])
            if last.get("sample_bits") else None,
            "test_argmax": _scores(plain),
            "switch_penalty": penalty, "train_per_by_penalty": tuning,
            "test_best_path": _scores(smooth),
            "test_reference_phones": plain["reference_phones"],
            "test_utterances": plain["utterances"], "test_frames": plain["frames"],
        }
        for label, res in (("argmax", plain), (f"penalty {penalty:g}", smooth)):
            print(f"{name:>10} {label:>12}: frame accuracy "
                  f"{100 * res['frame_accuracy']:.1f} %, PER {100 * res['per']:.1f} % "
                  f"({res['utterances']} test utterances)")
    first = next(iter(runs.values())) / "bundle"
    return {"benchmark": "asr-aux-loss", "data": data, "commands": commands,
            "tune_utterances": tune_utterances,
            "model": load_asr_bundle(first).config.to_dict(),
            "results": results, "baselines": baselines(data, first),
            "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                        "torch": torch.__version__},
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.asr_aux_loss",
                                description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset directory (its test split)")
    p.add_argument("--run", action="append", required=True, metavar="NAME=RUN_DIR",
                   help="a train-asr run directory under a name (repeat)")
    p.add_argument("--command", action="append", default=[],
                   help="a command of the experiment, recorded in the JSON (repeat)")
    p.add_argument("--penalties", default="0,1,2,4,8,16",
                   help="switch penalties (nats) to choose from on training utterances")
    p.add_argument("--tune-utterances", type=int, default=40,
                   help="training utterances that choose the penalty")
    p.add_argument("--out", default=str(RESULTS / "asr-aux-loss.json"))
    args = p.parse_args(argv)
    runs = {}
    for item in args.run:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            p.error(f"--run takes NAME=RUN_DIR, got {item!r}")
        runs[name] = Path(path)
    try:
        penalties = [float(v) for v in args.penalties.split(",")]
    except ValueError:
        p.error(f"--penalties takes comma-separated numbers, got {args.penalties!r}")
    res = run(args.data, runs, args.command, penalties, args.tune_utterances)
    for name, r in res["baselines"].items():
        print(f"baseline {name}: frame accuracy {100 * r['frame_accuracy']:.1f} %, "
              f"PER {100 * r['per']:.1f} %")
    write_json(res, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
