"""Command-line arguments that several subcommands share."""

from __future__ import annotations

import argparse


def add_sampling_args(s: argparse.ArgumentParser) -> None:
    """--temperature and --voiced-temperature (both default to the bundle's own)."""
    s.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the bundle's, usually 1.0; 0 = greedy)")
    s.add_argument("--voiced-temperature", type=float, default=None,
                   help="temperature in voiced frames (FFTNet's conditional sampling; "
                   "default: the bundle's; give the --temperature value to sample voiced "
                   "frames like the rest)")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    return {"temperature": args.temperature, "voiced_temperature": args.voiced_temperature}
