"""What offline folding costs in quality: the same utterance, same seed, generated with
and without folding, compared at the seams and overall.

Folded segments share the utterance's noise stream, so before the first seam the folded
audio is bit-identical to the unfolded one. After a seam the segment has warmed up over
``overlap`` samples instead of the true history; its samples may differ for a while and,
because both runs draw the same uniforms, often fall back into step (we measure how much
stays identical). What matters is whether the seams are *audible*: we compare
frame-to-frame changes (energy jump, spectral flux) on the frames that straddle a seam
with the same measure everywhere else, and the distance between folded and unfolded
audio with the distance between two unfolded draws of the same features (different
seeds): folding should not move the audio further than re-sampling does.

    python -m bench.folding_quality [--bundle DIR] [--seconds 10] [--backend native]

On a random-weight bundle the audio is noise-like, so these numbers bound seam artefacts
(clicks, energy steps) rather than prosody; F0 error at the seams needs a trained model.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

WIN, HOP = 320, 160  # 20 ms frames, 10 ms hop at 16 kHz


def frame_features(audio: np.ndarray, win: int = WIN, hop: int = HOP):
    """(log energy dB (F,), log magnitude spectrum dB (F, win//2+1)) of Hann frames."""
    n = 1 + max(0, (len(audio) - win) // hop)
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = audio[idx].astype(np.float64) * np.hanning(win)[None, :]
    energy = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-10)
    spec = 20 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) + 1e-5)
    return energy, spec


def _seam_frames(seams: list[int], n_frames: int, crossfade: int, win: int = WIN,
                 hop: int = HOP) -> np.ndarray:
    """Mask of frame transitions (i -> i+1) whose frames touch a seam's cross-fade."""
    mask = np.zeros(max(0, n_frames - 1), bool)
    for s in seams:
        lo, hi = s - crossfade, s + 1
        first = max(0, (lo - win) // hop)
        last = min(n_frames - 2, hi // hop + 1)
        for i in range(first, last + 1):
            a0, a1 = i * hop, (i + 1) * hop + win  # span of frames i and i+1
            if a0 < hi and a1 > lo:
                mask[i] = True
    return mask


def _changes(audio: np.ndarray):
    energy, spec = frame_features(audio)
    jump = np.abs(np.diff(energy))
    flux = np.sqrt(np.mean(np.diff(spec, axis=0) ** 2, axis=1))
    return energy, spec, jump, flux


def _ratio(values: np.ndarray, mask: np.ndarray) -> float:
    if not mask.any() or mask.all():
        return float("nan")
    return float(np.mean(values[mask]) / np.mean(values[~mask]))


def _lsd(a_spec: np.ndarray, b_spec: np.ndarray) -> float:
    """Mean log-spectral distance (dB) between two frame sequences."""
    n = min(len(a_spec), len(b_spec))
    return float(np.mean(np.sqrt(np.mean((a_spec[:n] - b_spec[:n]) ** 2, axis=1))))


def compare(ref: np.ndarray, other: np.ndarray, folded: np.ndarray, seams: list[int],
            crossfade: int) -> dict:
    """Metrics of ``folded`` against ``ref`` (unfolded, same seed) and ``other``
    (unfolded, another seed)."""
    n = len(ref)
    same = folded == ref
    first = seams[0] if seams else n
    diverge = []
    for s in seams:
        lo = max(0, s - crossfade)
        d = np.flatnonzero(~same[lo:])
        diverge.append(int(d[0]) - (s - lo) if len(d) else n - s)
    _, ref_spec, ref_jump, ref_flux = _changes(ref)
    _, oth_spec, _, _ = _changes(other)
    _, f_spec, f_jump, f_flux = _changes(folded)
    mask = _seam_frames(seams, len(f_spec), crossfade)
    ltas = lambda s: 10 * np.log10(np.mean(10 ** (s / 10), axis=0))
    rms = lambda a: float(np.sqrt(np.mean(np.asarray(a, np.float64) ** 2)))
    return {
        "identical_fraction": float(same.mean()),
        "identical_before_first_seam": float(same[: max(0, first - crossfade)].mean())
        if first - crossfade > 0 else None,
        "divergence_after_seam_samples_median": float(np.median(diverge)) if diverge
        else None,
        "seam_transitions": int(mask.sum()),
        "energy_jump_seam_vs_elsewhere": _ratio(f_jump, mask),
        "spectral_flux_seam_vs_elsewhere": _ratio(f_flux, mask),
        "unfolded_energy_jump_same_places": _ratio(ref_jump, mask),
        "unfolded_spectral_flux_same_places": _ratio(ref_flux, mask),
        "lsd_folded_vs_unfolded_db": _lsd(f_spec, ref_spec),
        "lsd_two_unfolded_draws_db": _lsd(oth_spec, ref_spec),
        "ltas_diff_folded_db": float(np.mean(np.abs(ltas(f_spec) - ltas(ref_spec)))),
        "ltas_diff_two_draws_db": float(np.mean(np.abs(ltas(oth_spec) - ltas(ref_spec)))),
        "rms_folded_over_unfolded": rms(folded) / max(rms(ref), 1e-12),
        "rms_other_draw_over_unfolded": rms(other) / max(rms(ref), 1e-12),
    }


def measure(voc, features: np.ndarray, seed: int = 0, settings_list=None) -> dict:
    """Fold ``features`` with each of ``settings_list`` (default: the library default,
    and an overlap covering the receptive field) and compare; see the module docstring."""
    from vocoder.config import receptive_field
    from vocoder.runtime import folding

    cfg = voc.config
    rf = receptive_field(cfg)
    n = len(features) * cfg.hop_length
    if settings_list is None:
        d = folding.FoldSettings()
        full = 1 << (rf - 1).bit_length()  # the receptive field, rounded up to 2^k
        settings_list = [d, folding.FoldSettings(overlap=full,
                                                 crossfade=min(d.crossfade, full))]
    ref = voc.synthesize(features, seed=seed, fold=False)
    other = voc.synthesize(features, seed=seed + 1, fold=False)
    runs = []
    for st in settings_list:
        if len(folding.plan(n, st)) < 2:  # too short to fold: make it fold anyway
            st = folding.FoldSettings(st.segments, max(1, n // 4), st.overlap, st.crossfade)
        segs = folding.plan(n, st)
        folded = voc.synthesize(features, seed=seed, fold=True, fold_settings=st)
        m = compare(ref, other, folded, [s.keep for s in segs[1:]], st.crossfade)
        runs.append({"segments": len(segs), "segment_samples": segs[0].end - segs[0].keep,
                     "overlap": st.overlap, "crossfade": st.crossfade,
                     "overlap_covers_receptive_field": st.overlap >= rf, **m})
    out = {"backend": voc.backend_name, "samples": n, "sample_rate": cfg.sample_rate,
           "seed": seed, "receptive_field": rf,
           "frame": {"win": WIN, "hop": HOP}, "settings": runs}
    out["summary"] = summary(out)
    return out


def summary(res: dict) -> str:
    lines = [f"folding quality ({res['samples'] / res['sample_rate']:g} s, "
             f"{res['backend']}, receptive field {res['receptive_field']}):"]
    for r in res["settings"]:
        lines.append(
            f"  {r['segments']} segments, overlap {r['overlap']}: seams vs elsewhere: "
            f"energy jump {r['energy_jump_seam_vs_elsewhere']:.2f}x, spectral flux "
            f"{r['spectral_flux_seam_vs_elsewhere']:.2f}x (unfolded at the same places "
            f"{r['unfolded_energy_jump_same_places']:.2f}x / "
            f"{r['unfolded_spectral_flux_same_places']:.2f}x); log-spectral distance to "
            f"unfolded {r['lsd_folded_vs_unfolded_db']:.2f} dB vs "
            f"{r['lsd_two_unfolded_draws_db']:.2f} dB between two unfolded draws; "
            f"{100 * r['identical_fraction']:.1f}% of samples identical")
    return "\n".join(lines)


def main(argv=None) -> int:
    import tempfile
    from pathlib import Path

    from bench.latency import features_for, make_random_bundle
    from vocoder.api import Vocoder

    p = argparse.ArgumentParser(prog="python -m bench.folding_quality",
                                description=__doc__.split("\n")[0])
    p.add_argument("--bundle", help="bundle directory (default: random weights)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.bundle) if args.bundle else make_random_bundle(Path(tmp) / "b")
        with Vocoder.load(path, backend=args.backend) as voc:
            feats = features_for(voc.config, int(args.seconds * voc.sample_rate), seed=31)
            res = measure(voc, feats, seed=args.seed)
    print(json.dumps(res, indent=2) if args.json else res["summary"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
