"""``vocoder resynth`` (copy synthesis) and ``vocoder mel`` (save a mel): parse, call, print.

``vocoder synthesize BUNDLE mel.npy`` needs nothing of its own: the API reads a saved mel
in either layout for a mel bundle.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from vocoder.cli_args import add_sampling_args, sampling_kwargs
from vocoder.errors import VocoderError


def mel_config_from_args(name: str, params: list[str] | None):
    """``--mel PRESET`` with ``--mel-param KEY=VALUE`` changes -> a MelConfig."""
    from vocoder.features.mel import parse_value, preset

    changes = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise VocoderError(f"--mel-param takes KEY=VALUE (e.g. sample_rate=16000), "
                               f"got {item!r}")
        changes[key.strip()] = parse_value(value)
    return preset(name, **changes)


def _cmd_resynth(args: argparse.Namespace) -> int:
    from vocoder.api import Vocoder
    from vocoder.features.analysis import read_audio
    from vocoder.fileio import audio_format, write_wav_atomic
    from vocoder.resynth import analyze, at_rate, resynthesize

    audio_format(args.output)
    audio, rate, channels = read_audio(args.input)
    opts = {"threads": args.threads} if args.threads else {}
    with Vocoder.load(args.bundle, backend=args.backend, **opts) as voc:
        speaker = args.speaker
        if speaker is None and voc.config.n_speakers:
            speaker = 0
        resample = not args.no_resample
        if args.save_mel:
            where = str(voc.bundle.path)
            x = at_rate(voc.feature_spec, audio, rate, resample, where)
            _save_mel(args.save_mel, analyze(voc.feature_spec, x, where=where).T,
                      voc.mel_config)
        t0 = time.perf_counter()
        out = resynthesize(voc, audio, rate, speaker=speaker, seed=args.seed,
                           **sampling_kwargs(args), resample=resample,
                           progress=not args.quiet)
        dt = time.perf_counter() - t0
        write_wav_atomic(args.output, out, voc.sample_rate)
        sr = voc.sample_rate
    notes = [f"mixed {channels} channels to mono"] if channels > 1 else []
    if rate != sr:
        notes.append(f"resampled {rate} -> {sr} Hz")
    secs = len(out) / sr
    print(f"wrote {args.output}: {secs:.2f} s at {sr} Hz, resynthesised in {dt:.2f} s "
          f"(real-time factor {dt / max(secs, 1e-9):.2f}) on {args.backend}"
          + (f" ({'; '.join(notes)})" if notes else ""))
    return 0


def _save_mel(path: str | Path, mel, config) -> None:
    """(D, T) float32 to .npy, or .npz with the analysis as JSON beside it ('mel',
    'mel_config'), written atomically."""
    import numpy as np

    from vocoder.fileio import atomic_path

    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise VocoderError(f"{path}: a mel is written as .npy or .npz")
    with atomic_path(path) as tmp:
        if path.suffix == ".npy":
            np.save(tmp, mel)
        else:
            np.savez(tmp, mel=mel, mel_config=np.array(json.dumps(config.to_dict())))


def _cmd_mel(args: argparse.Namespace) -> int:
    from vocoder.features.analysis import frame_features, read_audio, resample

    if (args.bundle is None) == (args.mel is None):
        raise VocoderError("vocoder mel needs either --bundle B (its analysis) or --mel "
                           "PRESET")
    if Path(args.output).suffix not in (".npy", ".npz"):
        raise VocoderError(f"{args.output}: a mel is written as .npy or .npz")
    audio, rate, _ = read_audio(args.input)
    if args.bundle is not None:
        from vocoder.bundle import load_bundle
        from vocoder.resynth import analyze, at_rate, mel_of

        if args.mel_param:
            raise VocoderError("--mel-param changes a preset; with --bundle the bundle's "
                               "analysis is used as it is")
        spec, where = load_bundle(args.bundle).feature_spec, args.bundle
        config = mel_of(spec, where)
        feats = analyze(spec, at_rate(spec, audio, rate, where=where), where=where)
    else:
        config = mel_config_from_args(args.mel, args.mel_param)
        feats = frame_features(resample(audio, rate, config.sample_rate), config)
    _save_mel(args.output, feats.T, config)
    print(f"wrote {args.output}: {feats.shape[1]} x {feats.shape[0]} (bands x frames), "
          f"{config.describe()}")
    return 0


def _cmd_train_postfilter(args: argparse.Namespace) -> int:
    from vocoder.train.mel_predictor import MelPredictorTraining, train_mel_predictor

    settings = MelPredictorTraining(steps=args.steps, seed=args.seed, preset=args.mel,
                                    pitch_shift=args.pitch_shift,
                                    shifted_copies=args.shifted_copies,
                                    layers=args.layers, hidden=args.hidden,
                                    kernel=args.kernel)
    rec = train_mel_predictor(args.bundle, args.data, settings, postfilter=args.passes,
                              progress=not args.quiet)
    val = rec["val_l1_db"]
    print(f"mel predictor: {rec['steps']} steps in {rec['seconds']:.0f} s, mean error "
          f"{rec['train_l1_db']:.2f} dB (train batch)"
          + (f", {val:.2f} dB (test split)" if val is not None else "")
          + f"; stored in {args.bundle}, post-filter default {args.passes} pass(es)")
    return 0


def register(subparsers) -> None:
    from vocoder.features.mel import PRESETS

    s = subparsers.add_parser(
        "resynth", help="copy synthesis: a recording -> its mels -> a mel bundle's audio",
        description="Analyse IN with the bundle's own mel analysis (resampled to its rate) "
        "and synthesise it: what comes out measures the vocoder alone.")
    s.add_argument("bundle", help="a mel-conditioned bundle")
    s.add_argument("input", help="audio file (any rate; several channels are mixed)")
    s.add_argument("-o", "--output", required=True, help="output audio file (.wav, .flac...)")
    s.add_argument("--backend", default="onnxruntime")
    s.add_argument("--threads", type=int, help="threads for the backend")
    s.add_argument("--speaker", type=int, help="for a bundle with speakers (default 0)")
    s.add_argument("--seed", type=int, default=0)
    add_sampling_args(s)
    s.add_argument("--no-resample", action="store_true",
                   help="refuse audio at another rate than the bundle's instead of "
                   "resampling it")
    s.add_argument("--save-mel", metavar="PATH",
                   help="also write the analysed mel (.npy (D, T), or .npz with its config)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_resynth)

    s = subparsers.add_parser(
        "mel", help="compute a log mel spectrogram (n_mels, T) of an audio file",
        description="Write the mel a bundle reads (--bundle) or a preset's (--mel), "
        "(n_mels, T) float32, as .npy or as .npz with the analysis ('mel', 'mel_config'); "
        "`vocoder synthesize BUNDLE OUT` takes either.")
    s.add_argument("input", help="audio file (resampled to the analysis's rate)")
    s.add_argument("-o", "--output", required=True, help=".npy or .npz")
    s.add_argument("--bundle", help="use this mel bundle's analysis")
    s.add_argument("--mel", metavar="PRESET", help=f"use a preset ({', '.join(PRESETS)})")
    s.add_argument("--mel-param", action="append", metavar="KEY=VALUE",
                   help="change a preset's field, e.g. sample_rate=16000 (repeatable)")
    s.set_defaults(func=_cmd_mel)

    s = subparsers.add_parser(
        "train-postfilter", help="train a bundle's mel predictor, so that a bundle on "
        "linguistic features takes the mel post-filter",
        description="Train a small network that predicts the log mels of the bundle's "
        "audio from its frame features, on a dataset with recordings, and store it in the "
        "bundle; synthesis then pulls the output toward the predicted mels "
        "(--postfilter). Mel bundles need none: they have their input mels.")
    s.add_argument("bundle", help="a bundle on frame features (not mels); changed in place")
    s.add_argument("--data", required=True, help="dataset directory with the bundle's "
                   "features and recordings (as for `vocoder train`)")
    s.add_argument("--steps", type=int, default=3000)
    s.add_argument("--passes", type=int, default=2,
                   help="the bundle's default post-filter passes (default 2)")
    s.add_argument("--mel", default="hifigan-16k", choices=sorted(PRESETS),
                   help="analysis of the predicted mels (its rate and hop become the "
                   "bundle's)")
    s.add_argument("--layers", type=int, default=4,
                   help="convolutions in the predictor (default 4)")
    s.add_argument("--hidden", type=int, default=256, help="their channels (default 256)")
    s.add_argument("--kernel", type=int, default=5,
                   help="their width in frames, odd (default 5)")
    s.add_argument("--pitch-shift", type=float, default=0.0, metavar="SEMITONES",
                   help="also train on WORLD pitch-shifted copies of the recordings, "
                   "shifted at random by up to this much, so that the predicted mels "
                   "follow F0 moved beyond the corpus's range (needs pyworld and the "
                   "features log_f0 and vuv; default 0: none)")
    s.add_argument("--shifted-copies", type=int, default=2, metavar="N",
                   help="pitch-shifted copies per training recording (default 2)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=_cmd_train_postfilter)
