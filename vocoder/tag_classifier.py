"""A small audio tag classifier, to measure whether generated clips follow their tags.

Features (numpy only; :func:`clip_features`, names in ``FEATURE_NAMES``), over the clip's
active frames (within ``ACTIVE_DB`` of its loudest):

* timbre: a cepstrum of ``N_BANDS`` log-spaced band energies (its first coefficient,
  the loudness, left out): the mean of each coefficient, its spread over time and the
  spread of its frame-to-frame change; the spectral centroid (mean and spread of its
  log) and the spectral flatness;
* envelope: how far the median frame level lies below the loud frames (sustained against
  decaying notes), the mean frame-to-frame level change, and its 95th / 5th percentiles
  (attacks, decays);
* note rate: peaks per second of the chroma novelty (how much the pitch-class profile
  changes over ``NOVELTY_LAG`` frames). Pitch classes rather than energy, so that the
  vibrato of strings and the legato of organs do not count as notes.

Classifier (:class:`TagClassifier`): tags are read in groups that exclude each other
(the dataset's ``tag_groups``, e.g. the instrument families, fast/slow); a tag in no
group is a group of its own, against its absence. Per group, nearest centroid after
whitening with the pooled within-class covariance (shrunk towards a multiple of the
identity by ``SHRINKAGE``): linear discriminant analysis with equal priors, fitted on
real clips. A tag's accuracy is the share of the clips carrying it that the classifier
gives it; chance is one over its group's classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vocoder.errors import VocoderError

N_BANDS = 32
N_CEPS = 12
FEATURE_NAMES = (*(f"cep_{k}" for k in range(1, N_CEPS + 1)),
                 *(f"cep_std_{k}" for k in range(1, N_CEPS + 1)),
                 *(f"cep_change_std_{k}" for k in range(1, N_CEPS + 1)),
                 "log_centroid_mean", "log_centroid_std", "log_flatness", "sustain_db",
                 "level_change_db", "level_rise_db_p95", "level_fall_db_p5", "log_note_rate")
ACTIVE_DB = 40.0
FRAME_S, CHROMA_FRAME_S, HOP_S = 0.032, 0.128, 0.008
NOVELTY_LAG = 3
NOVELTY_DELTA = 0.05
NOVELTY_LOCAL_S = 0.128
MIN_NOTE_GAP_S = 0.05
SHRINKAGE = 0.1
EPS = 1e-10


def _spectrum(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Magnitudes (n_frames, n_fft // 2 + 1) of Hann-windowed frames of ``x`` (zero-padded
    to at least one frame)."""
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    n = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    return np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft), axis=1))


def _pow2(seconds: float, sample_rate: int) -> int:
    return 1 << max(4, round(np.log2(seconds * sample_rate)))


def note_rate(x: np.ndarray, sample_rate: int) -> float:
    """Notes per second: peaks of the chroma novelty above its local mean plus
    ``NOVELTY_DELTA`` (of its maximum), at least ``MIN_NOTE_GAP_S`` apart."""
    n_fft, hop = _pow2(CHROMA_FRAME_S, sample_rate), max(1, round(HOP_S * sample_rate))
    mag = _spectrum(x, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    ok = (freqs > 60.0) & (freqs < min(4000.0, sample_rate / 2))
    pitch_class = np.round(12 * np.log2(freqs[ok] / 440.0)).astype(int) % 12
    p = mag[:, ok] ** 2
    chroma = np.stack([p[:, pitch_class == k].sum(1) for k in range(12)], 1)
    chroma /= np.linalg.norm(chroma, axis=1, keepdims=True) + EPS
    novelty = np.zeros(len(chroma))
    novelty[NOVELTY_LAG:] = 1.0 - (chroma[NOVELTY_LAG:] * chroma[:-NOVELTY_LAG]).sum(1)
    novelty /= novelty.max() + EPS
    local = max(1, round(NOVELTY_LOCAL_S / HOP_S))
    gap = max(1, round(MIN_NOTE_GAP_S / HOP_S))
    peaks, last = 0, -gap
    for t in range(len(novelty)):
        window = novelty[max(0, t - local): t + local + 1]
        if novelty[t] < novelty[max(0, t - 3): t + 4].max() or t - last < gap \
                or novelty[t] < window.mean() + NOVELTY_DELTA:
            continue
        peaks, last = peaks + 1, t
    return peaks / (max(x.size, 1) / sample_rate)


def clip_features(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Audio (N,) float in [-1, 1] -> features (len(FEATURE_NAMES),) float64."""
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    n_fft, hop = _pow2(FRAME_S, sample_rate), max(1, round(HOP_S * sample_rate))
    power = _spectrum(x, n_fft, hop) ** 2  # (T, F)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    level = 10 * np.log10(power.sum(1) + EPS)
    active = level >= level.max() - ACTIVE_DB
    p, lv = power[active], level[active]

    edges = np.geomspace(sample_rate / 256, sample_rate / 2, N_BANDS + 1)
    band_of = np.clip(np.searchsorted(edges, freqs, side="right") - 1, 0, N_BANDS - 1)
    bands = np.stack([p[:, band_of == b].sum(1) for b in range(N_BANDS)], 1)
    k = np.arange(N_BANDS)
    dct = np.cos(np.pi / N_BANDS * (k[None, :] + 0.5) * np.arange(1, N_CEPS + 1)[:, None])
    cep = np.log10(bands + EPS) @ dct.T  # (T, N_CEPS)
    cep_change = np.diff(cep, axis=0) if len(cep) > 1 else np.zeros_like(cep)

    centroid = np.log2(np.maximum((p * freqs).sum(1) / (p.sum(1) + EPS), 1.0))
    flatness = np.log(np.exp(np.log(p + EPS).mean(1)) / (p.mean(1) + EPS) + EPS)
    change = np.diff(lv) if lv.size > 1 else np.zeros(1)
    return np.concatenate([
        cep.mean(0), cep.std(0), cep_change.std(0),
        [centroid.mean(), centroid.std(), flatness.mean(),
         np.median(lv) - np.percentile(lv, 95), np.abs(change).mean(),
         np.percentile(change, 95), np.percentile(change, 5),
         np.log1p(note_rate(x, sample_rate))]])


def label_groups(tags: Sequence[str], groups: Sequence[Sequence[str]]
                 ) -> list[tuple[str, ...]]:
    """The classifier's groups: ``groups``, then each remaining tag on its own."""
    grouped = {t for g in groups for t in g}
    return [tuple(g) for g in groups] + [(t,) for t in tags if t not in grouped]


def _label(group: tuple[str, ...], clip_tags: Sequence[str]) -> str | None:
    """The clip's class in ``group``: its tag there, or None (none of them)."""
    mine = [t for t in group if t in clip_tags]
    if len(mine) > 1:
        raise VocoderError(f"a clip has tags {mine}, which exclude each other "
                           f"(tag group {list(group)})")
    return mine[0] if mine else None


@dataclass(frozen=True)
class TagClassifier:
    """Nearest-centroid tag classifier (module docstring).

    Features are standardised with ``mean``/``std`` (F,); per group g, ``classes[g]``
    are its labels (a tag, or None for "none of the group"), ``centroids[g]`` (K, F)
    their centroids and ``whiten[g]`` (F, F) the map after which distances are taken.
    """

    sample_rate: int
    groups: tuple[tuple[str, ...], ...]
    classes: tuple[tuple[str | None, ...], ...]
    mean: np.ndarray
    std: np.ndarray
    centroids: tuple[np.ndarray, ...]
    whiten: tuple[np.ndarray, ...]

    @classmethod
    def fit(cls, clips: Sequence[np.ndarray], clip_tags: Sequence[Sequence[str]],
            tags: Sequence[str], groups: Sequence[Sequence[str]], sample_rate: int
            ) -> TagClassifier:
        """Fit on real ``clips`` (float audio (N,) each) with their tag lists."""
        if len(clips) != len(clip_tags) or not clips:
            raise VocoderError("the tag classifier needs clips, one tag list each")
        feats = np.stack([clip_features(c, sample_rate) for c in clips])
        mean, std = feats.mean(0), feats.std(0)
        std = np.where(std > 1e-9, std, 1.0)
        z = (feats - mean) / std
        all_groups = label_groups(tags, groups)
        classes, centroids, whiten = [], [], []
        for group in all_groups:
            labels = [_label(group, t) for t in clip_tags]
            for tag in group:
                if tag not in labels:
                    raise VocoderError(f"no training clip has the tag {tag!r}: the "
                                       f"classifier cannot learn it")
            present = tuple(t for t in group if t in labels) \
                + ((None,) if None in labels else ())
            rows = [z[[i for i, v in enumerate(labels) if v == c]] for c in present]
            cents = np.stack([r.mean(0) for r in rows])
            resid = np.concatenate([r - c for r, c in zip(rows, cents)])
            d = z.shape[1]
            cov = resid.T @ resid / max(1, len(z) - len(present))
            # Shrinkage keeps the covariance invertible with fewer clips than features.
            cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / d * np.eye(d) \
                + 1e-9 * np.eye(d)
            classes.append(present)
            centroids.append(cents)
            whiten.append(np.linalg.cholesky(np.linalg.inv(cov)))
        return cls(sample_rate, tuple(all_groups), tuple(classes), mean, std,
                   tuple(centroids), tuple(whiten))

    def predict_features(self, feats: np.ndarray) -> list[str]:
        """Features (F,) -> the predicted tags (one per group; "none" classes left out)."""
        z = (feats - self.mean) / self.std
        out = []
        for classes, cents, w in zip(self.classes, self.centroids, self.whiten):
            d = (((z[None, :] - cents) @ w) ** 2).sum(1)
            label = classes[int(np.argmin(d))]
            if label is not None:
                out.append(label)
        return out

    def predict(self, audio: np.ndarray) -> list[str]:
        """Audio (N,) float -> the predicted tags."""
        return self.predict_features(clip_features(audio, self.sample_rate))

    def chance(self, tag: str) -> float:
        """Accuracy of guessing the tag's group at random."""
        for group, classes in zip(self.groups, self.classes):
            if tag in group:
                return 1.0 / len(classes)
        raise VocoderError(f"unknown tag {tag!r}")

    def accuracy(self, predicted: Sequence[Sequence[str]], truth: Sequence[Sequence[str]]
                 ) -> dict[str, dict[str, float | int | None]]:
        """Per tag: of the clips carrying it, the share that were given it.

        Returns ``{tag: {"n", "correct", "accuracy", "chance"}}`` for every tag
        (accuracy None where no clip carries it)."""
        out = {}
        for group in self.groups:
            for tag in group:
                n = sum(tag in t for t in truth)
                correct = sum(tag in t and tag in p for p, t in zip(predicted, truth))
                out[tag] = {"n": n, "correct": correct,
                            "accuracy": correct / n if n else None,
                            "chance": self.chance(tag)}
        return out
