"""``vocoder train`` and ``vocoder evaluate``: parse, call the library, print."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from vocoder.cli_args import add_sampling_args


def _cmd_train(args: argparse.Namespace) -> int:
    from vocoder.train import load_preset, train

    if args.bundle_from_checkpoint is not None:
        from vocoder.train.trainer import bundle_from_checkpoint

        step = None if args.bundle_from_checkpoint == "last" else int(
            args.bundle_from_checkpoint)
        path = bundle_from_checkpoint(args.out, args.bundle_from_checkpoint_to
                                      or Path(args.out) / f"bundle-step{step or 'last'}",
                                      step, export=not args.no_export)
        print(f"wrote {path}")
        return 0
    if not args.data:
        from vocoder.errors import VocoderError

        raise VocoderError("vocoder train needs --data DIR (a dataset directory)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # --init-from without --config keeps the source bundle's architecture and training
    preset = (None if args.resume or (args.init_from and not args.config)
              else load_preset(args.config))
    if args.resume and args.config:
        print("note: --resume continues with the checkpoint's own configs; --config ignored")
    res = train(args.data, args.out, preset, resume=args.resume, steps=args.steps,
                export=not args.no_export, progress=not args.quiet, device=args.device,
                init_from=args.init_from, new_conditioning=args.new_conditioning)
    if res.bundle is None:
        return 0  # a rank other than 0 under torchrun
    m = res.metrics
    val = m.get("val_bits")
    print(f"trained {res.step} steps in {res.elapsed_s:.1f} s "
          f"({res.samples_per_s:,.0f} samples/s at the end); train "
          f"{m.get('train_bits', float('nan')):.4f} bits/sample"
          + (f", validation {val:.4f} bits/sample" if val is not None else ""))
    print(f"wrote {res.bundle} (log: {Path(res.run_dir) / 'log.csv'})")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vocoder.evaluate import evaluate, format_report

    out = args.json
    res = evaluate(args.bundle, args.data, n=args.n, backend=args.backend, seed=args.seed,
                   n_nll=args.n_nll, pitch_semitones=args.pitch_semitones,
                   temperature=args.temperature, voiced_temperature=args.voiced_temperature,
                   postfilter=args.postfilter,
                   fold=args.fold == "on", out=out,
                   audio_dir=args.audio_dir, asr=not args.no_asr, progress=not args.quiet)
    print(format_report(res))
    if out:
        print(f"wrote {out}")
    if args.print_json:
        print(json.dumps(res, indent=2))
    return 0


def register(subparsers) -> None:
    s = subparsers.add_parser("train", help="train a WaveNet on a dataset directory")
    s.add_argument("--data", help="dataset directory (corpus.json + "
                   "manifest.jsonl), e.g. from `vocoder corpus espeak`")
    s.add_argument("--out", required=True, help="run directory: log, checkpoints, bundle/")
    s.add_argument("--config", help="preset JSON {\"model\": {...}, \"train\": {...}} "
                   "(e.g. configs/demo.json; default: built-in defaults)")
    s.add_argument("--resume", action="store_true",
                   help="continue bit-for-bit from the newest checkpoint in --out")
    s.add_argument("--steps", type=int, help="total steps (overrides the preset)")
    s.add_argument("--init-from", metavar="BUNDLE",
                   help="start a new run from this bundle's weights (fine-tuning, or a "
                   "model that adds the F0 excitation); without --config, with its "
                   "architecture and training config")
    s.add_argument("--new-conditioning", action="store_true",
                   help="with --init-from: take only the bundle's autoregressive stack and "
                   "learn a new conditioning network for this dataset's inputs (other "
                   "features, hop, speakers or tags; e.g. a mel vocoder from a "
                   "linguistic model)")
    s.add_argument("--device", help="cpu, cuda, cuda:1 (default: the GPU if any)")
    s.add_argument("--no-export", action="store_true",
                   help="write the final bundle without its ONNX graphs")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.add_argument("--bundle-from-checkpoint", metavar="STEP|last",
                   help="instead of training: write the bundle of a checkpoint in --out "
                   "(EMA weights), e.g. to evaluate an unfinished run")
    s.add_argument("--bundle-to", dest="bundle_from_checkpoint_to", metavar="DIR",
                   help="where --bundle-from-checkpoint writes (default: "
                   "OUT/bundle-stepN)")
    s.set_defaults(func=_cmd_train)

    s = subparsers.add_parser("evaluate", help="NLL, F0/V-UV error, MCD, pitch control, "
                              "STOI, PESQ and ASR word error rate of a bundle on a dataset's "
                              "test split")
    s.add_argument("bundle")
    s.add_argument("--data", required=True, help="dataset directory")
    s.add_argument("--n", type=int, default=4, help="test utterances to synthesise")
    s.add_argument("--n-nll", type=int, help="utterances scored for NLL (default: all)")
    s.add_argument("--backend", default="onnxruntime")
    s.add_argument("--seed", type=int, default=0)
    add_sampling_args(s)
    s.add_argument("--pitch-semitones", type=float, default=3.0,
                   help="shift for the pitch-control check (0: skip)")
    s.add_argument("--fold", default="off", choices=["on", "off"],
                   help="fold long utterances into parallel segments (as `synthesize`)")
    s.add_argument("--json", help="also write the results as JSON there (e.g. "
                   "BUNDLE/evaluation.json to keep them with the model)")
    s.add_argument("--audio-dir", help="also write the generated wavs here")
    s.add_argument("--no-asr", action="store_true",
                   help="skip the ASR word error rate (PocketSphinx, the slowest metric)")
    s.add_argument("--print-json", action="store_true", help="print the JSON too")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_evaluate)
