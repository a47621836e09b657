"""The benchmark figure: samples/s per runner against the real-time line, and the
offline batch sweep. Reads the JSON that :mod:`bench.latency` writes.

    python -m bench.plot bench/results/bench-XXXX.json [-o out.png]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def plot_results(results: dict[str, Any], path: Path) -> Path:
    """Write the PNG to ``path`` (atomically) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vocoder.fileio import atomic_path

    sr = results["model"]["config"]["sample_rate"]
    runners = results["runners"]
    sweeps = results.get("batch_sweep", {})
    fig, axes = plt.subplots(1, 2 if sweeps else 1, figsize=(13 if sweeps else 8, 5.5),
                             squeeze=False)
    ax = axes[0, 0]
    names = list(runners)
    stream = [runners[n]["stream"]["samples_per_s"] for n in names]
    offline = [runners[n]["e2e"].get("10s", runners[n]["e2e"].get("1s", {}))
               .get("audio_samples_per_s", 0) for n in names]
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], stream, height=0.4, label="streaming, batch 1",
            color="tab:blue")
    ax.barh([i - 0.2 for i in y], offline, height=0.4, color="tab:orange",
            label="synthesize (longest utterance; folds when the backend does)")
    for i, v in enumerate(stream):
        ax.text(v, i + 0.2, f" {v:,.0f}", va="center", fontsize=8)
    ax.axvline(sr, color="red", linestyle="--", label=f"real time ({sr:,} samples/s)")
    ax.set_xscale("log")
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlabel("samples / s (log scale)")
    ax.set_title("generation speed per backend")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    if sweeps:
        ax2 = axes[0, 1]
        for name, rows in sweeps.items():
            ks = [r["segments"] for r in rows]
            ax2.plot(ks, [r["samples_per_s"] for r in rows], marker="o", label=name)
            for r in rows:
                ax2.annotate(f"{r['x_realtime']:.1f}x", (r["segments"], r["samples_per_s"]),
                             textcoords="offset points", xytext=(0, 6), ha="center",
                             fontsize=8)
        ax2.axhline(sr, color="red", linestyle="--", label="real time")
        if "torch" in runners:
            ax2.axhline(runners["torch"]["stream"]["samples_per_s"], color="gray",
                        linestyle=":", label="torch reference (batch 1)")
        ax2.set_xscale("log", base=2)
        ax2.set_xticks(ks, [str(k) for k in ks])
        ax2.set_xlabel("segments generated as one batch (offline folding)")
        ax2.set_ylabel("audio samples / s")
        secs = rows[0]["samples"] / sr
        ax2.set_title(f"offline folding, one {secs:g} s utterance")
        ax2.legend(fontsize=8)
    m = results["machine"]
    fig.suptitle(f"{m['cpu']} ({m['logical_cores']} logical cores), "
                 f"{results['model']['mflops_per_sample']:.2f} MFLOP/sample, "
                 f"{results['date']}, load average {_load(m)}"
                 + (" [quick]" if results.get("quick") else ""),
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def _load(machine: dict[str, Any]) -> str:
    a, b = machine.get("load_average_start"), machine.get("load_average_end")
    return f"{a[0]:.1f} at start, {b[0]:.1f} at end" if a and b else "unknown"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.plot", description=__doc__.split("\n")[0])
    p.add_argument("json", help="a bench results JSON file")
    p.add_argument("-o", "--out", help="PNG path (default: beside the JSON)")
    args = p.parse_args(argv)
    src = Path(args.json)
    out = plot_results(json.loads(src.read_text()), Path(args.out or src.with_suffix(".png")))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
