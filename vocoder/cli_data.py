"""CLI subcommands for data: ``vocoder corpus espeak|music ...`` and ``vocoder features``.

Thin: parse, call ``vocoder.data``, print one summary line. ``register(subparsers)`` is
called by ``vocoder.cli`` with the object returned by ``add_subparsers()``.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from vocoder.data.corpus import DEFAULT_SPEAKERS, Dataset


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``corpus`` and ``features`` subcommands; each sets ``func(args) -> int``."""
    from vocoder.features.mel import PRESETS

    corpus = subparsers.add_parser("corpus", help="build a built-in training corpus")
    kinds = corpus.add_subparsers(dest="corpus_kind", required=True, metavar="KIND")
    esp = kinds.add_parser("espeak", help="multi-speaker English corpus spoken by eSpeak NG",
                           description="Synthesise seeded sentences with eSpeak NG voices "
                           f"(speakers = the first N of {', '.join(DEFAULT_SPEAKERS)}) and "
                           "write wavs + features + manifest to --out.")
    esp.add_argument("--out", required=True, help="output directory")
    esp.add_argument("--speakers", type=int, default=4, help="number of voices (default 4)")
    esp.add_argument("--utterances", type=int, default=50,
                     help="utterances per speaker (default 50)")
    esp.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
    esp.add_argument("--hop-length", type=int, default=80,
                     help="samples per feature frame (default 80)")
    esp.add_argument("--seed", type=int, default=0, help="names the corpus (default 0)")
    esp.add_argument("--test-fraction", type=float, default=0.1,
                     help="held-out share per speaker (default 0.1)")
    esp.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    esp.set_defaults(func=_cmd_corpus_espeak)

    mus = kinds.add_parser("music", help="tagged music clips rendered by FluidSynth",
                           description="Compose short clips from a seed (scales, arpeggios, "
                           "chords; key and tempo varied), render them with the fluidsynth "
                           "command and a GM soundfont, and write wavs + manifest to --out. "
                           "Tags: the instrument family and fast/slow; no frame features.")
    mus.add_argument("--out", required=True, help="output directory")
    mus.add_argument("--clips", type=int, default=200, help="number of clips (default 200)")
    mus.add_argument("--seconds", type=float, default=4.0,
                     help="length of each clip (default 4.0)")
    mus.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
    mus.add_argument("--hop-length", type=int, default=80,
                     help="frame unit of training crops, in samples (default 80)")
    mus.add_argument("--seed", type=int, default=0, help="names the corpus (default 0)")
    mus.add_argument("--test-fraction", type=float, default=0.1,
                     help="held-out share per (family, tempo) combination (default 0.1)")
    mus.add_argument("--soundfont", default=None,
                     help="GM soundfont (default /usr/share/sounds/sf2/FluidR3_GM.sf2)")
    mus.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    mus.set_defaults(func=_cmd_corpus_music)

    feats = subparsers.add_parser(
        "features", help="compute features for your own wavs",
        description="Read a JSONL or CSV manifest (id, wav, features (.npy) or labels "
        "(HTS), speaker, split) and write a dataset (wavs, feats with log-F0 + voicing, "
        "manifest.jsonl, corpus.json) to --out. With --mel PRESET: log mel spectrograms "
        "of the wavs instead (any manifest with id and wav, or a dataset directory such "
        "as the built-in corpus), for a mel-conditioned model.")
    feats.add_argument("--manifest", required=True, help="JSONL or CSV manifest (with "
                       "--mel also a dataset directory, e.g. data/espeak)")
    feats.add_argument("--out", required=True, help="output directory")
    feats.add_argument("--labels-question-file", default=None,
                       help="HTS question file (needed when the manifest has labels)")
    feats.add_argument("--hts-matching", choices=("merlin", "htk"), default="merlin",
                       help="how QS patterns match: merlin (default; a pattern without * "
                       "is searched anywhere, as Merlin and nnmnkwii do) or htk (each "
                       "pattern must match the whole context)")
    feats.add_argument("--hts-positions", choices=("centre", "merlin"), default="centre",
                       help="position columns: centre (default; at the frame centre, log "
                       "phone duration in seconds) or merlin (at the frame end, phone "
                       "duration in frames)")
    feats.add_argument("--max-trailing-audio", type=float, default=0.25, metavar="SECONDS",
                       help="audio running past its labels' end by up to this much is "
                       "trimmed, more is an error (default 0.25)")
    feats.add_argument("--hop-length", type=int, default=None,
                       help="samples per feature frame (default 80; with --mel the "
                       "preset's)")
    feats.add_argument("--sample-rate", type=int, default=None,
                       help="required wav rate (default: the first wav's; not with "
                       "--mel, which resamples the wavs to the analysis's rate)")
    mel = feats.add_argument_group("mel spectrograms")
    mel.add_argument("--mel", metavar="PRESET",
                     help=f"write log mels of this analysis instead ({', '.join(PRESETS)}); "
                     "the dataset is at its sample rate and hop")
    mel.add_argument("--mel-param", action="append", metavar="KEY=VALUE",
                     help="change a field of the preset, e.g. sample_rate=16000 or "
                     "hop_length=200 (repeatable; any MelConfig field)")
    mel.add_argument("--mel-f0", action="store_true",
                     help="also store log-F0 and voicing after the mels (pyworld), for a "
                     "model with the F0 excitation input")
    mel.add_argument("--keep-speakers", action="store_true",
                     help="keep the manifest's speaker ids (a speaker embedding); default: "
                     "no speakers, a speaker-independent vocoder")
    feats.add_argument("--f0-method", choices=("dio", "harvest"), default="dio")
    feats.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    feats.set_defaults(func=_cmd_features)


def _summary(ds: Dataset) -> str:
    n_train, n_test = len(ds.split("train")), len(ds.split("test"))
    tags = f", tags {', '.join(ds.tags)}" if ds.tags else ""
    return (f"{ds.root}: {len(ds.entries)} utterances ({n_train} train, {n_test} test), "
            f"{len(ds.speakers)} speakers, {len(ds.feature_names)} features per frame"
            f"{tags}, {ds.sample_rate} Hz, hop {ds.hop_length}")


def _cmd_corpus_espeak(args: argparse.Namespace) -> int:
    from vocoder.data.corpus import build_espeak_corpus

    ds = build_espeak_corpus(args.out, speakers=args.speakers, utterances=args.utterances,
                             sample_rate=args.sample_rate, hop_length=args.hop_length,
                             seed=args.seed, test_fraction=args.test_fraction,
                             progress=not args.no_progress)
    print(_summary(ds))
    return 0


def _cmd_mel_features(args: argparse.Namespace) -> int:
    from vocoder.cli_mel import mel_config_from_args
    from vocoder.data.mel_corpus import build_mel_dataset
    from vocoder.errors import VocoderError

    given = [flag for flag, value in (("--hop-length", args.hop_length),
                                      ("--sample-rate", args.sample_rate),
                                      ("--labels-question-file", args.labels_question_file))
             if value is not None]
    if given:
        raise VocoderError(f"{', '.join(given)} cannot go with --mel: the mel analysis sets "
                           f"the rate and hop (change them with --mel-param "
                           f"sample_rate=... hop_length=...)")
    mel = mel_config_from_args(args.mel, args.mel_param)
    ds = build_mel_dataset(args.manifest, args.out, mel, f0=args.mel_f0,
                           f0_method=args.f0_method, keep_speakers=args.keep_speakers,
                           progress=not args.no_progress)
    print(_summary(ds) + f"; {mel.describe()}")
    return 0


def _cmd_corpus_music(args: argparse.Namespace) -> int:
    from vocoder.data.music import build_music_corpus

    ds = build_music_corpus(args.out, clips=args.clips, seconds=args.seconds,
                            sample_rate=args.sample_rate, hop_length=args.hop_length,
                            seed=args.seed, test_fraction=args.test_fraction,
                            soundfont=args.soundfont, progress=not args.no_progress)
    print(_summary(ds))
    return 0


def _cmd_features(args: argparse.Namespace) -> int:
    from vocoder.data.corpus import build_features_for_manifest
    from vocoder.features.hts import HTSConfig

    if args.mel is not None:
        return _cmd_mel_features(args)
    if args.mel_param or args.mel_f0 or args.keep_speakers:
        from vocoder.errors import VocoderError

        raise VocoderError("--mel-param, --mel-f0 and --keep-speakers go with --mel PRESET")

    config = HTSConfig(matching=args.hts_matching, positions=args.hts_positions,
                       max_trailing_s=args.max_trailing_audio)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = build_features_for_manifest(args.manifest, args.out,
                                         question_file=args.labels_question_file,
                                         hop_length=args.hop_length or 80,
                                         sample_rate=args.sample_rate,
                                         f0_method=args.f0_method,
                                         progress=not args.no_progress, hts_config=config)
    print(_summary(ds))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return 0
