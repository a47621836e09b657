"""``vocoder evaluate-tags``: parse, call :mod:`vocoder.evaluate_tags`, print."""

from __future__ import annotations

import argparse
import json


def _cmd_evaluate_tags(args: argparse.Namespace) -> int:
    from vocoder.evaluate_tags import evaluate_tags, format_report

    res = evaluate_tags(args.bundle, args.data, n=args.n, seconds=args.seconds,
                        backend=args.backend, seed=args.seed, temperature=args.temperature,
                        out=args.json, audio_dir=args.audio_dir, progress=not args.quiet)
    print(format_report(res))
    if args.json:
        print(f"wrote {args.json}")
    if args.print_json:
        print(json.dumps(res, indent=2))
    return 0


def register(subparsers) -> None:
    s = subparsers.add_parser(
        "evaluate-tags", help="tag accuracy of clips a tag-conditioned model generates",
        description="Fit a small tag classifier (timbre, envelope and note-rate features, "
        "nearest centroid) on the dataset's train clips, score it on the real test clips "
        "(the ceiling), then generate --n clips for every tag set of the test split and "
        "report the accuracy per tag.")
    s.add_argument("bundle", help="a tag-conditioned bundle without local conditioning")
    s.add_argument("--data", required=True, help="tagged dataset directory (e.g. from "
                   "`vocoder corpus music`)")
    s.add_argument("--n", type=int, default=2, help="clips per tag set (default 2)")
    s.add_argument("--seconds", type=float, help="length of each generated clip "
                   "(default: the median test clip's)")
    s.add_argument("--backend", default="onnxruntime")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the bundle's)")
    s.add_argument("--json", help="also write the report as JSON there")
    s.add_argument("--audio-dir", help="also write the generated clips here")
    s.add_argument("--print-json", action="store_true", help="print the JSON too")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_evaluate_tags)
