"""``vocoder train-asr``, ``vocoder recognize`` and ``vocoder evaluate-asr``: parse, call
the library (:mod:`vocoder.asr`), print."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _cmd_train_asr(args: argparse.Namespace) -> int:
    from vocoder.asr.config import load_asr_preset
    from vocoder.asr.train import train_asr

    preset = None if args.resume else load_asr_preset(args.config)
    if args.resume and args.config:
        print("note: --resume continues with the checkpoint's own configs; --config ignored")
    res = train_asr(args.data, args.out, preset, resume=args.resume, steps=args.steps,
                    aux_weight=args.aux_weight, progress=not args.quiet, device=args.device)
    m = res.metrics
    parts = [f"frame loss {m.get('frame_loss', float('nan')):.4f} nats"]
    if "sample_bits" in m:
        parts.append(f"next-sample loss {m['sample_bits']:.4f} bits/sample")
    if "val_frame_acc" in m:
        parts.append(f"validation frame accuracy {100 * m['val_frame_acc']:.1f} %, "
                     f"PER {100 * m['val_per']:.1f} %")
    print(f"trained {res.step} steps in {res.elapsed_s:.1f} s; " + "; ".join(parts))
    if res.bundle is not None:
        print(f"wrote {res.bundle} (log: {Path(res.run_dir) / 'log.csv'})")
    return 0


def _cmd_recognize(args: argparse.Namespace) -> int:
    from vocoder.asr.recognize import recognize_file

    segments = recognize_file(args.bundle, args.wav, args.switch_penalty)
    if args.json:
        print(json.dumps([{"phone": s.phone, "start": round(s.start, 4),
                           "end": round(s.end, 4)} for s in segments], indent=2))
        return 0
    for s in segments:
        print(f"{s.start:8.3f} {s.end:8.3f}  {s.phone}")
    return 0


def _cmd_evaluate_asr(args: argparse.Namespace) -> int:
    from vocoder.asr.recognize import evaluate_asr, format_report
    from vocoder.fileio import write_text_atomic

    res = evaluate_asr(args.bundle, args.data, n=args.n, switch_penalty=args.switch_penalty,
                       progress=not args.quiet)
    print(format_report(res))
    if args.json:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v)
                 for k, v in res.items()}
        write_text_atomic(args.json, json.dumps(clean, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


def _penalty(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _add_penalty(s: argparse.ArgumentParser) -> None:
    s.add_argument("--switch-penalty", type=_penalty, default=0.0, metavar="NATS",
                   help="decode the best path that pays this log-probability for every "
                   "change of phone, smoothing away short flickers (default 0: the "
                   "frame-wise argmax)")


def register(subparsers) -> None:
    s = subparsers.add_parser("train-asr", help="train the speech-recognition WaveNet "
                              "(frame-wise phones + next sample) on a dataset with phone "
                              "alignments")
    s.add_argument("--data", required=True, help="dataset directory with a phone "
                   "alignment, e.g. from `vocoder corpus espeak`")
    s.add_argument("--out", required=True, help="run directory: log, checkpoints, bundle/")
    s.add_argument("--config", help="preset JSON {\"model\": {...}, \"train\": {...}} "
                   "(e.g. configs/asr-small.json; default: built-in defaults)")
    s.add_argument("--resume", action="store_true",
                   help="continue bit-for-bit from the newest checkpoint in --out")
    s.add_argument("--steps", type=int, help="total steps (overrides the preset)")
    s.add_argument("--aux-weight", type=float, help="weight of the next-sample loss "
                   "(overrides the preset; 0 = frame loss only)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: the GPU if any)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train_asr)

    s = subparsers.add_parser("recognize", help="print the phones of a wav with start and "
                              "end times (speech-recognition bundle)")
    s.add_argument("bundle", help="a bundle from `vocoder train-asr` (RUN/bundle)")
    s.add_argument("wav", help="mono wav at the model's sample rate")
    _add_penalty(s)
    s.add_argument("--json", action="store_true", help="print JSON instead of lines")
    s.set_defaults(func=_cmd_recognize)

    s = subparsers.add_parser("evaluate-asr", help="frame accuracy and phone error rate of "
                              "a speech-recognition bundle on a dataset's test split")
    s.add_argument("bundle")
    s.add_argument("--data", required=True, help="dataset directory with a phone alignment")
    s.add_argument("--n", type=int, help="only the first N test utterances")
    _add_penalty(s)
    s.add_argument("--json", help="also write the report (with per-utterance rows) here")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_evaluate_asr)
