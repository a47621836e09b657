"""Spectrograms of one test utterance: the recording and what each bundle makes of it.

    python -m bench.spectrograms --data data/espeak --utt spk01_0140 \\
        --bundle "new model=models/demo" --bundle "old model=/tmp/old-demo" \\
        [--backend native] [--seed 0] [--out bench/results/spectrograms.png]

One panel per row (log-magnitude STFT, 64 ms Hann windows); the conditioning F0 is drawn
over every panel, so voicing (harmonics stacked on it) is easy to see. A model without
local conditioning (the music corpus) generates as much audio as the recording, with the
clip's tags. ``--wav-dir`` also writes the generated audio.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def log_spectrogram(audio: np.ndarray, n_fft: int = 1024, hop: int = 160) -> np.ndarray:
    """(n_fft // 2 + 1, frames) magnitude in dB (scipy's STFT, Hann window)."""
    from scipy.signal import stft

    _, _, z = stft(audio.astype(np.float64), nperseg=n_fft, noverlap=n_fft - hop,
                   window="hann", boundary=None)
    return 20 * np.log10(np.maximum(np.abs(z), 1e-7))


def main(argv: list[str] | None = None) -> int:
    from vocoder import Vocoder
    from vocoder.data.corpus import load_manifest
    from vocoder.fileio import write_wav_atomic

    p = argparse.ArgumentParser(prog="python -m bench.spectrograms",
                                description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--utt", required=True, help="utterance id of the dataset")
    p.add_argument("--bundle", action="append", default=[], metavar="LABEL=PATH")
    p.add_argument("--backend", default="native")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench/results/spectrograms.png"))
    p.add_argument("--wav-dir", type=Path)
    p.add_argument("--max-hz", type=float, default=4000, help="top of the frequency axis")
    args = p.parse_args(argv)
    ds = load_manifest(args.data)
    entry = next((e for e in ds.entries if e.id == args.utt), None)
    if entry is None:
        raise SystemExit(f"no utterance {args.utt!r} in {args.data}")
    audio, feats = ds.load(entry)
    sr, hop = ds.sample_rate, ds.hop_length
    rows = [("recording", audio.astype(np.float32) / 32768.0)]
    for item in args.bundle:
        label, _, path = item.partition("=")
        with Vocoder.load(path, backend=args.backend) as voc:
            speaker = entry.speaker if voc.config.n_speakers else None
            local = voc.config.cond_channels > 0
            gen = voc.synthesize(feats if local else None, speaker=speaker, seed=args.seed,
                                 gc=ds.gc(entry),
                                 n_samples=None if local else len(audio))
        rows.append((label, gen))
        if args.wav_dir:
            args.wav_dir.mkdir(parents=True, exist_ok=True)
            write_wav_atomic(args.wav_dir / f"{args.utt}-{label.replace(' ', '_')}.wav", gen,
                             sr)
    names = list(ds.feature_names)
    f0 = np.exp(feats[:, names.index("log_f0")]) if "log_f0" in names else None
    vuv = feats[:, names.index("vuv")] > 0.5 if "vuv" in names else None

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.3 * len(rows)), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, (label, a) in zip(axes, rows):
        s = log_spectrogram(a)
        t = np.arange(s.shape[1]) * 160 / sr
        ax.imshow(s, origin="lower", aspect="auto", cmap="magma", vmin=s.max() - 80,
                  vmax=s.max(), extent=[0, t[-1] if len(t) else 0, 0, sr / 2])
        if f0 is not None:
            tf = (np.arange(len(f0)) + 0.5) * hop / sr
            track = np.where(vuv, f0, np.nan) if vuv is not None else f0
            ax.plot(tf, track, color="cyan", lw=0.8, alpha=0.8)
        ax.set_ylim(0, args.max_hz)
        ax.set_ylabel("Hz")
        tags = f" ({', '.join(entry.tags)})" if entry.tags else ""
        ax.set_title(f"{label}: {args.utt}{tags}", fontsize=9)
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
