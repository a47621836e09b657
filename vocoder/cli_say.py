"""``vocoder say``: text -> eSpeak NG front end -> features -> WaveNet -> wav (or speakers)."""

from __future__ import annotations

import time
from pathlib import Path

from vocoder.cli_args import add_sampling_args, sampling_kwargs

#: Where the shipped demo model lives in a checkout.
DEMO = Path("models") / "demo"


def _cmd_say(args) -> int:
    from vocoder.api import Vocoder
    from vocoder.errors import VocoderError
    from vocoder.fileio import audio_format, write_wav_atomic
    from vocoder.tts import text_features

    if args.output is None and not args.play:
        raise VocoderError("say: give -o OUT.wav, --play, or both")
    if args.output is not None:
        audio_format(args.output)
    from vocoder.runtime.registry import resolve

    bundle = args.bundle or demo_bundle()
    with Vocoder.load(bundle, backend=resolve(args.backend, live=args.play)) as voc:
        feats = text_features(voc, args.text, args.speaker, args.pitch_shift)
        speaker = args.speaker if voc.config.n_speakers else None
        if args.play:
            from vocoder import playback

            rep = playback.play(voc, feats, speaker=speaker, seed=args.seed,
                                **sampling_kwargs(args), out=args.output)
            print(rep.summary() + f" on {voc.backend_name}")
            return 0
        t0 = time.perf_counter()
        audio = voc.synthesize(feats, speaker=speaker, seed=args.seed,
                               **sampling_kwargs(args), progress=not args.quiet)
        dt = time.perf_counter() - t0
        write_wav_atomic(args.output, audio, voc.sample_rate)
    print(f"wrote {args.output}: {len(audio) / voc.sample_rate:.2f} s of speech in {dt:.2f} s "
          f"on {voc.backend_name}")
    return 0


def demo_bundle() -> Path:
    """The shipped demo model: ``models/demo`` under the current directory when there is
    one, else the one beside the installed package (a source checkout)."""
    from vocoder.errors import VocoderError

    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / DEMO / "config.json").is_file():
            return root / DEMO
    raise VocoderError(f"no {DEMO} here or beside the package; pass --bundle DIR (a model "
                       "trained on an eSpeak corpus)")


def register(sub) -> None:
    s = sub.add_parser("say", help="text-to-speech demo: eSpeak NG front end + the WaveNet")
    s.add_argument("text")
    s.add_argument("--bundle", help="a model trained on an eSpeak corpus (default: the "
                   f"shipped demo model, {DEMO})")
    s.add_argument("-o", "--output", help="output .wav")
    s.add_argument("--play", action="store_true", help="play through the sound card")
    s.add_argument("--speaker", type=int, default=0)
    s.add_argument("--pitch-shift", type=float, default=0.0, help="semitones (+/-)")
    s.add_argument("--seed", type=int, default=0)
    add_sampling_args(s)
    s.add_argument("--backend", default="auto",
                   help="auto (default): native for --play when numba is installed, else "
                   "onnxruntime; or any backend by name")
    s.add_argument("-q", "--quiet", action="store_true")
    s.set_defaults(func=_cmd_say)
