"""``vocoder play``: generate and play live through sounddevice (thin: parse, call, print)."""

from __future__ import annotations

import sys

from vocoder.cli_args import add_global_args, add_sampling_args, sampling_kwargs, synthesis_length
from vocoder.errors import VocoderError


def _latency(text: str):
    if text in ("low", "high"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise VocoderError(f"--latency takes 'low', 'high' or seconds, got {text!r}") from None
    if value <= 0:
        raise VocoderError(f"--latency must be > 0 seconds, got {value}")
    return value


def _device(text: str | None):
    if text is None:
        return None
    return int(text) if text.isdigit() else text


def _cmd_play(args) -> int:
    from vocoder import playback

    if args.list_devices:
        devices = playback.list_output_devices()
        if not devices:
            print("no output devices (PortAudio sees none)")
        for d in devices:
            mark = "*" if d["default"] else " "
            print(f"{mark}{d['index']:>3}  {d['name']:<32} {d['hostapi']:<10} "
                  f"{d['channels']} ch, {d['default_samplerate']:.0f} Hz")
        return 0
    if args.bundle is None:
        raise VocoderError("vocoder play needs BUNDLE and FEATURES, BUNDLE and --seconds for "
                           "a model without local conditioning, or --list-devices")

    from vocoder.api import Vocoder
    from vocoder.inputs import load_features_file
    from vocoder.tags import global_vector

    feats, extras = (None, {}) if args.features is None \
        else load_features_file(args.features)
    speaker = args.speaker if args.speaker is not None else extras.get("speaker")
    latency = _latency(args.latency)
    device = _device(args.device)
    opts = {"threads": args.threads} if args.threads else {}
    from vocoder.runtime.registry import resolve

    backend = resolve(args.backend, live=True)
    with Vocoder.load(args.bundle, backend=backend, **opts) as voc:
        n_samples = synthesis_length(voc.config, feats is not None, args.seconds)
        gc = global_vector(voc.bundle.tags, voc.config.gc_channels, args.tags, args.gc,
                           extras.get("gc"))
        if speaker is None and voc.config.n_speakers:
            speaker = 0
        common = dict(speaker=speaker, seed=args.seed, **sampling_kwargs(args),
                      gc=gc, n_samples=n_samples, chunk=args.chunk,
                      mel_config=extras.get("mel_config"))
        try:
            playback.check_output_device(device)
        except VocoderError as e:
            if args.out is None:
                raise
            # No way to play here, but the file can still be written.
            n, dt = playback.render(voc, feats, out=args.out, **common)
            print(f"vocoder: cannot play ({e})", file=sys.stderr)
            print(f"wrote {args.out}: {n / voc.sample_rate:.2f} s of audio in {dt:.2f} s "
                  f"(real-time factor {dt * voc.sample_rate / max(n, 1):.2f}) "
                  f"on {voc.backend_name}")
            return 0
        rep = playback.play(voc, feats, device=device, latency=latency, out=args.out,
                            **common)
    print(rep.summary() + f" on {backend}")
    if rep.output:
        print(f"wrote {rep.output}")
    return 0


def register(sub) -> None:
    s = sub.add_parser("play", help="generate from features (or --tags/--seconds) and play "
                       "live (sounddevice)")
    s.add_argument("bundle", nargs="?")
    s.add_argument("features", nargs="?", help=".npy (frames, D) or .npz with 'features'; "
                   "for a mel bundle a saved mel (n_mels, T), as `vocoder mel` writes it; "
                   "none for a model without local conditioning (give --seconds)")
    s.add_argument("--backend", default="auto",
                   help="auto (default): native when numba is installed (a single stream "
                   "faster than real time), else onnxruntime; or any backend by name")
    s.add_argument("--threads", type=int, help="threads for the backend")
    s.add_argument("--device", help="output device index or name substring "
                   "(see --list-devices)")
    s.add_argument("--latency", default="high",
                   help="device latency: 'low', 'high' (default) or seconds")
    s.add_argument("--chunk", type=int, help="samples per generated chunk (default: the "
                   "backend's; 50 ms on the CPU)")
    s.add_argument("--list-devices", action="store_true", help="list output devices and exit")
    s.add_argument("--out", help="also write the audio to this .wav (works without a device)")
    s.add_argument("--speaker", type=int)
    add_global_args(s)
    s.add_argument("--seed", type=int, default=0)
    add_sampling_args(s)
    s.set_defaults(func=_cmd_play)
