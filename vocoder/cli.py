"""The ``vocoder`` command: parse arguments, call the library, print. Nothing else."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from vocoder.cli_args import add_global_args, add_sampling_args, sampling_kwargs, synthesis_length
from vocoder.errors import VocoderError

#: Modules that add their own subcommands through ``register(subparsers)``.
COMMAND_MODULES = ("vocoder.cli_data", "vocoder.cli_train", "vocoder.cli_say",
                   "vocoder.cli_play", "vocoder.cli_bench", "vocoder.cli_asr", "vocoder.cli_mel",
                   "vocoder.cli_tags")


def _cmd_info(args) -> int:
    from vocoder.bundle import load_bundle
    from vocoder.config import (
        context_dilations,
        context_receptive_field,
        flops_per_sample,
        receptive_field,
    )

    b = load_bundle(args.bundle)
    cfg = b.config
    rf = receptive_field(cfg)
    n_params = sum(int(w.size) for w in b.weights.values())
    info = {
        "bundle": str(b.path),
        "config": cfg.to_dict(),
        "hop_length": cfg.hop_length,
        "dilations": cfg.dilations,
        "context_dilations": context_dilations(cfg),
        "receptive_field_samples": rf,
        "receptive_field_ms": round(1000 * rf / cfg.sample_rate, 2),
        "parameters": n_params,
        "mflops_per_sample": round(flops_per_sample(cfg) / 1e6, 3),
        "features": None if b.feature_spec is None else
        {"dim": b.feature_spec.dim, "hop_length": b.feature_spec.hop_length,
         "names": list(b.feature_spec.names[:8]) + (["..."] if b.feature_spec.dim > 8 else [])},
        "exported": sorted(p.name for p in b.path.glob("*.onnx")),
        "tags": list(b.tags),
        "sampling": b.sampling.to_dict(),
        "mel_predictor": None if b.mel_predictor is None else
        {"parameters": sum(int(w.size) for w in b.mel_predictor[1].values()),
         "mel": b.mel_predictor[0].mel.describe()},
        "training": b.training,
    }
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"bundle            {info['bundle']}")
    for k, v in cfg.to_dict().items():
        print(f"  {k:<22}{v}")
    print(f"dilations         {cfg.dilations}")
    if cfg.context_pool:
        print(f"context stack     blocks of {cfg.context_pool} samples, dilations "
              f"{context_dilations(cfg)}: {context_receptive_field(cfg)} blocks")
    print(f"receptive field   {rf} samples = {info['receptive_field_ms']} ms"
          + (" (both stacks)" if cfg.context_pool else ""))
    print(f"parameters        {n_params:,}")
    print(f"MFLOPs/sample     {info['mflops_per_sample']}")
    if b.feature_spec is not None:
        print(f"features          {b.feature_spec.dim} per frame, hop {cfg.hop_length}")
    if b.tags:
        print(f"tags              {', '.join(b.tags)} (--tags)")
    print(f"exported          {', '.join(info['exported']) or 'no (run `vocoder export`)'}")
    sm = b.sampling
    print(f"sampling          temperature {sm.temperature}"
          + (f", voiced {sm.voiced_temperature}" if sm.voiced_temperature is not None else "")
          + (f", mel post-filter {sm.postfilter} pass(es)" if sm.postfilter else ""))
    if b.mel_predictor is not None:
        mp = info["mel_predictor"]
        print(f"mel predictor     {mp['parameters']:,} parameters: {mp['mel']}")
    if b.training:
        print(f"training          {json.dumps(b.training)[:200]}")
    return 0


def _cmd_init(args) -> int:
    import torch

    from vocoder.bundle import save_bundle
    from vocoder.config import PRESETS, WaveNetConfig
    from vocoder.model import WaveNet

    if args.config:
        try:
            overrides = json.loads(Path(args.config).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise VocoderError(f"{args.config}: cannot read a JSON config ({e})") from None
        cfg = WaveNetConfig.from_dict(overrides.get("model", overrides))
    else:
        cfg = PRESETS[args.preset]
    tags = None
    if args.tags is not None:
        from vocoder.tags import check_tag_names, parse_tag_list

        tags = check_tag_names(parse_tag_list(args.tags), "--tags")
    changes = {k: v for k, v in (("cond_channels", args.cond_channels),
                                 ("n_speakers", args.speakers),
                                 ("gc_channels", None if tags is None else len(tags)))
               if v is not None}
    if changes:
        cfg = cfg.replace(**changes)
    out = Path(args.out)
    if (out / "config.json").exists():
        if not args.force:
            raise VocoderError(f"{out} already holds a bundle; pass --force to replace it")
        # Its exports and engines belong to the weights being replaced.
        for old in [*out.glob("*.onnx"), *out.glob("engines/*")]:
            old.unlink()
        (out / "config.json").unlink()
    torch.manual_seed(args.seed)
    path = save_bundle(WaveNet(cfg), cfg, args.out,
                       training={"note": "random weights (vocoder init)", "seed": args.seed},
                       tags=tags)
    print(f"wrote a random-weight bundle to {path} "
          f"(cond_channels={cfg.cond_channels}, n_speakers={cfg.n_speakers}"
          + (f", tags {', '.join(tags)}" if tags else "") + ")")
    if not args.no_export:
        from vocoder.export.exporter import export_bundle

        rep = export_bundle(path)
        print(f"exported {', '.join(rep.files)} (max abs diff vs torch "
              f"{max(rep.max_abs_diff.values()):.2e})")
    return 0


def _cmd_export(args) -> int:
    from vocoder.export.exporter import export_bundle

    try:
        batches = tuple(int(b) for b in args.batch.split(","))
    except ValueError:
        raise VocoderError(f"--batch takes comma-separated ints, got {args.batch!r}") from None
    rep = export_bundle(args.bundle, opset=args.opset, batches=batches, static=args.static)
    for name, diff in rep.max_abs_diff.items():
        print(f"{name:<18} max abs diff vs torch {diff:.2e}")
    print(f"wrote {', '.join(str(p) for p in rep.files.values())} (opset {rep.opset})")
    if args.engine:
        from vocoder.bundle import load_bundle
        from vocoder.runtime.registry import create

        backend = create("tensorrt", load_bundle(args.bundle), precision=args.precision)
        built = backend.build_engines(batches)
        print(f"built TensorRT engines: {', '.join(str(p) for p in built)}")
    return 0


def _cmd_synthesize(args) -> int:
    import time

    import numpy as np

    from vocoder.api import Vocoder
    from vocoder.fileio import audio_format, write_wav_atomic
    from vocoder.inputs import load_features_file
    from vocoder.tags import global_vector

    audio_format(args.output)
    opts = {"threads": args.threads} if args.threads else {}
    with Vocoder.load(args.bundle, backend=args.backend, **opts) as voc:
        n_samples = synthesis_length(voc.config, args.features is not None, args.seconds)
        feats, extras = (None, {}) if args.features is None \
            else load_features_file(args.features)
        speaker = args.speaker if args.speaker is not None else extras.get("speaker")
        gc = global_vector(voc.bundle.tags, voc.config.gc_channels, args.tags, args.gc,
                           extras.get("gc"))
        if speaker is None and voc.config.n_speakers:
            speaker = 0
        t0 = time.perf_counter()
        audio = voc.synthesize(feats, speaker=speaker, seed=args.seed,
                               **sampling_kwargs(args), gc=gc, n_samples=n_samples,
                               fold=args.fold == "on", mel_config=extras.get("mel_config"),
                               progress=not args.quiet)
        dt = time.perf_counter() - t0
        write_wav_atomic(args.output, audio, voc.sample_rate)
        secs = len(audio) / voc.sample_rate
    print(f"wrote {args.output}: {secs:.2f} s of audio in {dt:.2f} s "
          f"({len(audio) / dt:,.0f} samples/s, real-time factor {dt / secs:.2f}) "
          f"on {args.backend}; peak {float(np.abs(audio).max()):.2f}")
    return 0


def _cmd_doctor(args) -> int:
    import platform

    from vocoder.runtime.registry import available

    print(f"python      {platform.python_version()} on {platform.machine()} "
          f"({platform.processor() or platform.system()})")
    from vocoder.machine import cpu_caches, cpu_model, huge_pages

    caches = ", ".join(f"{k} {v}" for k, v in cpu_caches().items() if k != "L1i")
    print(f"cpu         {cpu_model()}, {os.cpu_count()} logical cores"
          + (f"; {caches}" if caches else "")
          + (f"; transparent huge pages: {huge_pages()}" if huge_pages() else ""))
    for mod in ("numpy", "torch", "onnx", "onnxruntime", "numba", "triton", "tensorrt",
                "sounddevice", "soxr"):
        try:
            m = importlib.import_module(mod)
            print(f"{mod:<12}{getattr(m, '__version__', 'installed')}")
        except Exception as e:  # report any import failure, not just ImportError
            print(f"{mod:<12}not available ({type(e).__name__}: {e})")
    from vocoder.features.f0 import pyworld_available

    print(f"{'pyworld':<12}{'available' if pyworld_available() else 'not available'}")
    try:
        import torch

        if torch.cuda.is_available():
            print(f"gpu         {torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda})")
        else:
            print("gpu         none visible to torch")
    except ImportError:
        pass
    print("backends:")
    for name, (ok, why) in available().items():
        print(f"  {name:<12}{'yes' if ok else 'no ':<4} {why}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vocoder", description="WaveNet neural vocoder: train, "
                                "export to ONNX, synthesise faster than real time.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("info", help="show a bundle's config, receptive field, size, cost")
    s.add_argument("bundle")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.set_defaults(func=_cmd_info)

    s = sub.add_parser("init", help="write a random-weight bundle (for trying things out)")
    s.add_argument("out", help="bundle directory to create")
    s.add_argument("--preset", default="default", choices=["default", "paper", "tiny"])
    s.add_argument("--config", help="JSON file with WaveNetConfig fields (overrides --preset)")
    s.add_argument("--cond-channels", type=int, help="local conditioning feature dimension")
    s.add_argument("--speakers", type=int, help="number of speakers (global conditioning)")
    s.add_argument("--tags", metavar="A,B", help="tag names of a tag-conditioned model (its "
                   "global vector has one entry per tag); --cond-channels 0 for one without "
                   "local conditioning")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--no-export", action="store_true", help="skip writing the ONNX graphs")
    s.add_argument("--force", action="store_true", help="replace a bundle already there")
    s.set_defaults(func=_cmd_init)

    s = sub.add_parser("export", help="write condition.onnx and step.onnx into a bundle")
    s.add_argument("bundle")
    s.add_argument("--opset", type=int, default=17)
    s.add_argument("--batch", default="1", help="batch sizes, e.g. 1,8,32 (engines, --static)")
    s.add_argument("--static", action="store_true", help="fix the step graph's batch size")
    s.add_argument("--engine", action="store_true", help="also build TensorRT engines")
    s.add_argument("--precision", default="fp16", choices=["fp32", "fp16"])
    s.set_defaults(func=_cmd_export)

    s = sub.add_parser("synthesize", help="features (.npy/.npz) -> wav; or --tags/--gc and "
                       "--seconds for a model without local conditioning")
    s.add_argument("bundle")
    s.add_argument("features", nargs="?", default=None,
                   help=".npy (frames, D) or .npz with 'features' [, 'speaker', 'gc']; "
                   "none for a model without local conditioning (give --seconds)")
    s.add_argument("-o", "--output", required=True, help="output .wav")
    s.add_argument("--speaker", type=int)
    add_global_args(s)
    s.add_argument("--seed", type=int, default=0)
    add_sampling_args(s)
    s.add_argument("--backend", default="onnxruntime")
    s.add_argument("--threads", type=int, help="threads for the backend")
    s.add_argument("--fold", default="off", choices=["on", "off"],
                   help="fold long utterances into overlapping segments generated side by "
                        "side: much faster on long inputs, but not the same audio as "
                        "unfolded generation (default: off)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_synthesize)

    s = sub.add_parser("doctor", help="which backends work on this machine, and why not")
    s.set_defaults(func=_cmd_doctor)

    for mod in COMMAND_MODULES:
        try:
            module = importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        module.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except VocoderError as e:
        print(f"vocoder: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vocoder: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
