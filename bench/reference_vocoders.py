"""What classical copies of the held-out recordings score on `vocoder evaluate`'s measures:
the scale against which a neural vocoder's numbers can be read.

    python -m bench.reference_vocoders --data data/espeak [--n 8]
                                       [--out bench/results/reference-vocoders.json]

For the first ``--n`` test utterances of a dataset (the ones `vocoder evaluate --n` uses),
each copy is scored against the recording with evaluate's own MCD (WORLD mel-cepstra, loud
frames), V/UV error (pyworld on both), STOI and wideband PESQ:

- ``mulaw8``: the recording's 8-bit mu-law copy (the classes a 256-class model predicts);
- ``mulaw8-preemphasis-A``: the same through pre-emphasis A and de-emphasis;
- ``world``: WORLD analysis/synthesis (DIO + StoneMask, CheapTrick, D4C);
- ``world-noise``: the same spectral envelope excited by noise alone (no F0, aperiodicity
  1): a vocoder that gets every envelope right and never voices.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.report import write_json


def copies(audio: np.ndarray, sample_rate: int, preemphasis: float) -> dict[str, np.ndarray]:
    from vocoder.emphasis import audio_to_classes, classes_to_audio
    from vocoder.evaluate import _pyworld

    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.dio(x, sample_rate)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    ap = pw.d4c(x, f0, t, sample_rate)

    def fit(y):
        return np.pad(y, (0, max(0, len(x) - len(y))))[:len(x)]

    return {
        "mulaw8": classes_to_audio(audio_to_classes(x, 256, 0.0), 256, 0.0)[0],
        f"mulaw8-preemphasis-{preemphasis:g}": classes_to_audio(
            audio_to_classes(x, 256, preemphasis), 256, preemphasis)[0],
        "world": fit(pw.synthesize(f0, sp, ap, sample_rate)),
        "world-noise": fit(pw.synthesize(np.zeros_like(f0), sp, np.ones_like(ap),
                                         sample_rate)),
    }


def score(ref: np.ndarray, gen: np.ndarray, sample_rate: int, hop: int) -> dict:
    from vocoder.evaluate import (
        MCD_FLOOR_DB,
        _frame_level_db,
        _mcd_frames,
        f0_track,
        mel_cepstra,
    )
    from vocoder.intelligibility import pesq_wb, stoi_score

    tf = len(ref) // hop
    level = _frame_level_db(ref, hop, tf)
    loud = level > level.max() - MCD_FLOOR_DB
    mcd = _mcd_frames(mel_cepstra(gen, sample_rate, hop, tf),
                      mel_cepstra(ref, sample_rate, hop, tf))[loud]
    _, v_ref = f0_track(ref, sample_rate, hop, tf)
    _, v_gen = f0_track(gen, sample_rate, hop, tf)
    return {"mcd_frames": mcd.tolist(), "vuv_errors": int(np.sum(v_ref != v_gen)),
            "frames": tf, "stoi": stoi_score(ref, gen, sample_rate),
            "pesq_wb": pesq_wb(ref, gen, sample_rate)}


def main(argv: list[str] | None = None) -> int:
    from vocoder.data.corpus import load_manifest
    from vocoder.mulaw import as_float64

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset directory (its test split)")
    p.add_argument("--n", type=int, default=8, help="test utterances (default 8)")
    p.add_argument("--preemphasis", type=float, default=0.85)
    p.add_argument("--out", default="bench/results/reference-vocoders.json")
    args = p.parse_args(argv)

    ds = load_manifest(args.data)
    entries = (ds.split("test") or ds.split("train"))[:args.n]
    pooled: dict[str, dict] = {}
    for e in entries:
        ref = as_float64(ds.load(e)[0])
        for name, gen in copies(ref, ds.sample_rate, args.preemphasis).items():
            s = score(ref, gen, ds.sample_rate, ds.hop_length)
            acc = pooled.setdefault(name, {"mcd": [], "vuv": 0, "frames": 0, "stoi": [],
                                           "pesq": []})
            acc["mcd"] += s["mcd_frames"]
            acc["vuv"] += s["vuv_errors"]
            acc["frames"] += s["frames"]
            acc["stoi"] += [s["stoi"]] if s["stoi"] is not None else []
            acc["pesq"] += [s["pesq_wb"]] if s["pesq_wb"] is not None else []
    result = {"data": str(args.data), "utterances": [e.id for e in entries],
              "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "copies": {}}
    for name, acc in pooled.items():
        result["copies"][name] = {
            "mcd_db": round(float(np.mean(acc["mcd"])), 3),
            "vuv_error_rate": round(acc["vuv"] / acc["frames"], 4),
            "stoi_mean": round(float(np.mean(acc["stoi"])), 4) if acc["stoi"] else None,
            "pesq_wb_mean": round(float(np.mean(acc["pesq"])), 3) if acc["pesq"] else None}
    for name, r in result["copies"].items():
        print(f"{name:<28} MCD {r['mcd_db']:6.2f} dB  V/UV {100 * r['vuv_error_rate']:5.1f} %"
              f"  STOI {r['stoi_mean']}  PESQ {r['pesq_wb_mean']}")
    write_json(result, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
