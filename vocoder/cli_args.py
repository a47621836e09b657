"""Command-line arguments that several subcommands share."""

from __future__ import annotations

import argparse
import math

from vocoder.errors import VocoderError


def add_sampling_args(s: argparse.ArgumentParser) -> None:
    """--temperature, --voiced-temperature and --postfilter (all default to the bundle's
    own)."""
    s.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the bundle's, usually 1.0; 0 = greedy)")
    s.add_argument("--voiced-temperature", type=float, default=None,
                   help="temperature in voiced frames (FFTNet's conditional sampling; "
                   "default: the bundle's; give the --temperature value to sample voiced "
                   "frames like the rest)")
    s.add_argument("--postfilter", type=int, default=None, metavar="PASSES",
                   help="passes of the mel post-filter, which pulls the output's mel "
                   "spectrum toward the input or predicted mels (mel bundles and bundles "
                   "with a mel predictor; 0 = off; default: the "
                   "bundle's; each pass adds most of an analysis window of streaming latency)")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    return {"temperature": args.temperature, "voiced_temperature": args.voiced_temperature,
            "postfilter": args.postfilter}


def add_global_args(s: argparse.ArgumentParser) -> None:
    """--tags or --gc (global conditioning) and --seconds (models without features)."""
    glob = s.add_mutually_exclusive_group()
    glob.add_argument("--tags", metavar="A,B", help="tags of a tag-conditioned model, e.g. "
                      "piano,fast (`vocoder info` lists them)")
    glob.add_argument("--gc", metavar="X,Y,...", help="the global conditioning vector "
                      "itself, one number per tag, e.g. 1,0,0,1")
    s.add_argument("--seconds", type=float, help="how much audio a model without local "
                   "conditioning generates")


def synthesis_length(cfg, has_features: bool, seconds: float | None) -> int | None:
    """Samples to generate: None (the features decide) for a locally conditioned model,
    ``--seconds`` for one without local conditioning; a VocoderError for the other mixes."""
    if cfg.cond_channels:
        if seconds is not None:
            raise VocoderError(f"--seconds is for models without local conditioning; this "
                               f"one reads {cfg.cond_channels} features per frame, and the "
                               f"FEATURES file sets the length")
        if not has_features:
            raise VocoderError(f"this model needs a FEATURES file (.npy or .npz with frames "
                               f"x {cfg.cond_channels} features)")
        return None
    if has_features:
        raise VocoderError("this model has no local conditioning: drop the FEATURES file "
                           "and give --seconds N")
    if seconds is None:
        raise VocoderError("this model has no local conditioning: pass --seconds N (how "
                           "much audio to generate)")
    if not (math.isfinite(seconds) and seconds > 0):
        raise VocoderError(f"--seconds must be a number > 0, got {seconds}")
    return max(1, round(seconds * cfg.sample_rate))
