"""Learning curves of training runs: every checkpoint evaluated as a bundle.

    python -m bench.curves runs/a runs/b --data data/espeak [--every 500] [--n 2]
                           [--n-nll 12] [--out bench/results/curves.json] [--watch]

For each checkpoint (every ``--every`` steps) of each run: its EMA weights as a bundle
(:func:`vocoder.train.trainer.bundle_from_checkpoint`), then ``vocoder evaluate`` on the
test split: teacher-forced NLL over all, voiced and unvoiced samples (``--n-nll``
utterances), and free-running synthesis of ``--n`` utterances on the ``native`` backend
(V/UV error, F0 error, MCD). Rows are appended to ``--out`` (JSON lines, one per run and
step; steps already there are skipped), and a PNG of the curves is written beside it.
``--watch`` keeps polling for new checkpoints until every run has its last one.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

CURVE_KEYS = ("nll_bits_per_sample", "nll_voiced_bits", "nll_unvoiced_bits",
              "vuv_error_rate", "f0_error_cents_median", "mcd_db")


def evaluate_checkpoint(run: Path, step: int, data: Path, n: int, n_nll: int,
                        backend: str) -> dict:
    """One row: the run, step, elapsed training time and :data:`CURVE_KEYS`."""
    from vocoder.evaluate import evaluate
    from vocoder.train.trainer import bundle_from_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        bundle = bundle_from_checkpoint(run, Path(tmp) / "bundle", step)
        res = evaluate(bundle, data, n=n, n_nll=n_nll, backend=backend, pitch_semitones=0.0,
                       seed=0)
        cfg = json.loads((bundle / "config.json").read_text())
    row = {"run": str(run), "step": step,
           "train_time_s": cfg["training"].get("time_s"),
           "excitation": cfg["model"].get("excitation", 0)}
    row.update({k: res.get(k) for k in CURVE_KEYS})
    return row


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("nll_voiced_bits", "NLL voiced (bits/sample)"),
              ("nll_unvoiced_bits", "NLL unvoiced (bits/sample)"),
              ("vuv_error_rate", "V/UV error, free running"),
              ("f0_error_cents_median", "F0 error (cents)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2))
    for ax, (key, title) in zip(axes, panels):
        for run in sorted({r["run"] for r in rows}):
            pts = sorted((r["step"], r[key]) for r in rows
                         if r["run"] == run and r.get(key) is not None)
            if pts:
                ax.plot(*zip(*pts), marker="o", label=Path(run).name)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    from vocoder.train.trainer import list_checkpoints, load_checkpoint

    p = argparse.ArgumentParser(prog="python -m bench.curves", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="training run directories")
    p.add_argument("--data", required=True, type=Path, help="dataset directory")
    p.add_argument("--every", type=int, default=500, help="evaluate steps divisible by this")
    p.add_argument("--n", type=int, default=2, help="utterances synthesised per checkpoint")
    p.add_argument("--n-nll", type=int, default=12, help="utterances scored for NLL")
    p.add_argument("--backend", default="native")
    p.add_argument("--out", type=Path, default=Path("bench/results/curves.jsonl"))
    p.add_argument("--watch", action="store_true",
                   help="poll for new checkpoints until every run has its last one")
    args = p.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        done = {(r["run"], r["step"]) for r in read_rows(args.out)}
        finished = True
        for run in args.runs:
            ckpts = list_checkpoints(run)
            last = load_checkpoint(ckpts[-1][1])["train_config"]["steps"] if ckpts else None
            finished &= bool(ckpts) and ckpts[-1][0] >= last
            for step, _ in ckpts:
                if step % args.every or (str(run), step) in done:
                    continue
                row = evaluate_checkpoint(run, step, args.data, args.n, args.n_nll,
                                          args.backend)
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
                plot(read_rows(args.out), args.out.with_suffix(".png"))
        if not args.watch or finished:
            return 0
        time.sleep(60)


if __name__ == "__main__":
    raise SystemExit(main())
