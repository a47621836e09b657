"""``Vocoder``: load a bundle, pick a backend, turn frame features (or mels) into audio."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from vocoder.bundle import load_bundle
from vocoder.emphasis import audio_to_classes, classes_to_audio, deemphasize
from vocoder.errors import VocoderError
from vocoder.inputs import (
    batch_items,
    check_features,
    check_gc,
    check_mel_config,
    check_n_samples,
    check_speaker,
)
from vocoder.mulaw import dequantize
from vocoder.postfilter import Analysis, MelPostfilter, analysis, check_passes
from vocoder.postfilter import postfilter as apply_postfilter  # `postfilter` is an argument
from vocoder.runtime import engine, folding, registry
from vocoder.runtime.conditioning import Conditioner
from vocoder.runtime.sampling import check_temperature


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise VocoderError(f"seed must be an int >= 0, got {seed!r}")
    return int(seed) & 0xFFFFFFFF


class Vocoder:
    """A loaded model with a backend.

    >>> voc = Vocoder.load("models/demo")             # ONNX Runtime on the CPU
    >>> audio = voc.synthesize(features, speaker=0)   # float32 mono at voc.sample_rate

    A mel-conditioned bundle (:attr:`mel_config` is not None) takes log mels as acoustic
    models emit them: (n_mels, T) or (B, n_mels, T), numpy or torch; frames-first
    (T, n_mels) too (``layout`` says which when the shape cannot: a square array is read
    channels-first). ``mel_config`` (a preset name or a MelConfig) states how the mels
    were made, and a different band count, hop or rate from the bundle's is refused.

    Sampling: inverse CDF of the temperature-scaled softmax with one uniform per sample
    from a counter-based hash of (seed, stream, sample index); see
    :mod:`vocoder.runtime.sampling`. Every backend draws the same numbers.
    """

    def __init__(self, backend):
        self.backend = backend
        self.bundle = backend.bundle
        self.config = backend.config
        self.feature_spec = self.bundle.feature_spec
        # The post-filter's filter bank and window (librosa), built here when the bundle
        # post-filters by default, so that the first synthesis or stream does not wait.
        self._pf_tools = None
        if self.bundle.sampling.postfilter and self.postfilter_mel_config is not None:
            self._postfilter_tools()

    @classmethod
    def load(cls, path: str | Path, backend: str = registry.DEFAULT_BACKEND,
             **options) -> Vocoder:
        """Load the bundle directory ``path`` and start ``backend`` on it.

        Backends: ``onnxruntime`` (default; needs ``vocoder export``), ``torch`` (the
        reference), and others when installed (``vocoder doctor`` lists them).
        ``options`` go to the backend (e.g. ``threads``).
        """
        return cls(registry.create(backend, load_bundle(path), **options))

    # -- properties -------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def mel_config(self):
        """The :class:`~vocoder.features.mel.MelConfig` a mel-conditioned bundle reads
        (also for :func:`vocoder.features.mel.log_mel`); None for other features."""
        return None if self.feature_spec is None else self.feature_spec.mel

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def close(self) -> None:
        self.backend.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- input handling ---------------------------------------------------------------
    def prepare(self, features, *, layout: str | None = None, mel_config=None,
                what: str = "features") -> np.ndarray | None:
        """The raw (T, D) float32 frames synthesis reads from ``features``, validated
        (:func:`vocoder.inputs.check_features`; mels in either layout for a mel bundle,
        checked against ``mel_config`` when given). None for a model without local
        conditioning."""
        check_mel_config(mel_config, self.feature_spec)
        return check_features(features, self.config, what, spec=self.feature_spec,
                              layout=layout)

    def _conditioner(self, features, speaker, gc, n_samples, normalize,
                     what="features", layout=None) -> Conditioner:
        cfg = self.config
        f = check_features(features, cfg, what, spec=self.feature_spec, layout=layout)
        n = check_n_samples(n_samples, f, cfg)
        spec = self.feature_spec
        norm = spec.normalize if normalize and spec else None
        vuv = spec.names.index("vuv") if spec is not None and "vuv" in spec.names else None
        return Conditioner(cfg, f, check_speaker(speaker, cfg), check_gc(gc, cfg), n,
                           normalize=norm, vuv_feature=vuv)

    @property
    def sampling(self):
        """The bundle's default temperatures (:class:`vocoder.bundle.SamplingDefaults`)."""
        return self.bundle.sampling

    def resolve_temperatures(self, temperature, voiced) -> tuple[float, float | None]:
        """(temperature, voiced temperature or None), the bundle's where not given."""
        d = self.bundle.sampling
        t = check_temperature(d.temperature if temperature is None else temperature)
        v = d.voiced_temperature if voiced is None else voiced
        v = None if v is None else check_temperature(v)
        return t, (None if v == t else v)

    def resolve_postfilter(self, passes) -> int:
        """Mel post-filter passes (:mod:`vocoder.postfilter`), the bundle's where None;
        a VocoderError when asked of a bundle that does not read mels."""
        p = check_passes(self.bundle.sampling.postfilter if passes is None else passes)
        if p and self.mel_config is None and self.bundle.mel_predictor is None:
            raise VocoderError("the mel post-filter needs a mel-conditioned bundle or one "
                               "with a mel predictor (`vocoder train-postfilter`): it pulls "
                               "the output toward mels; this bundle has neither: use "
                               "postfilter=0")
        return p

    @property
    def postfilter_mel_config(self):
        """The analysis the post-filter works in: the mels a mel bundle reads, or those
        its mel predictor makes; None when the bundle has neither."""
        if self.mel_config is not None:
            return self.mel_config
        p = self.bundle.mel_predictor
        return None if p is None else p[0].mel

    def _postfilter_tools(self) -> Analysis:
        if self._pf_tools is None:
            self._pf_tools = analysis(self.postfilter_mel_config)
        return self._pf_tools

    def _target_mels(self, cond: Conditioner, normalize: bool) -> np.ndarray:
        """(T, n_mels) raw log mels the post-filter pulls toward: a mel bundle's own
        input (features given normalised are mapped back), or the mel predictor's."""
        spec = self.feature_spec
        f = np.asarray(cond.features, dtype=np.float64)
        if self.mel_config is None:
            from vocoder.mel_predictor import predict

            cfg, weights = self.bundle.mel_predictor
            normed = spec.normalize(f) if normalize and spec is not None else f
            speaker = None if cond.speaker is None else int(cond.speaker[0])
            return predict(cfg, weights, normed, speaker)
        if not normalize:
            f = f * np.asarray(spec.std) + np.asarray(spec.mean)
        return f[:, :self.mel_config.n_mels]

    # -- synthesis --------------------------------------------------------------------
    def synthesize(self, features=None, speaker: int | None = None, seed: int = 0,
                   temperature: float | None = None, *, gc=None,
                   n_samples: int | None = None,
                   fold: bool = False, fold_settings: folding.FoldSettings | None = None,
                   normalize: bool = True, progress: bool = False,
                   voiced_temperature: float | None = None, layout: str | None = None,
                   mel_config=None, postfilter: int | None = None) -> np.ndarray:
        """Features (Tf, D) -> audio (Tf * hop,) float32 in [-1, 1]; a batch (B, Tf, D)
        -> (B, Tf * hop), generated side by side (as :meth:`synthesize_batch`).

        A mel bundle takes mels (n_mels, T) or (B, n_mels, T) (see the class docstring);
        ``layout`` ("frames-first" or "channels-first") overrides reading it from the
        shape, and ``mel_config`` (a preset name, MelConfig or dict) is checked against
        the bundle's analysis.

        features are raw (the bundle's normalisation is applied unless ``normalize`` is
        False). ``fold`` cuts long utterances into overlapping segments generated as a
        batch: several times faster on long inputs, but no longer the same audio as
        unfolded generation (each segment starts from a short warm-up, not from the
        whole past; see :mod:`vocoder.runtime.folding`). Off by default, so the same call
        gives the same audio on every backend.
        ``voiced_temperature`` is the sampling temperature in frames whose ``vuv`` feature
        is set, ``temperature`` staying in the others (FFTNet's conditional sampling: less
        noise in voiced speech; CPU backends). Either left None takes the bundle's
        default (:attr:`sampling`); pass ``voiced_temperature=temperature`` to sample
        voiced frames like the rest.
        ``postfilter``: passes of the mel post-filter (:mod:`vocoder.postfilter`; mel
        bundles only, 0 = off; None takes the bundle's default).
        """
        items = batch_items(features)
        k = 1 if items is None else len(items)
        out = self.synthesize_batch([features] if items is None else items,
                                    None if speaker is None else [speaker] * k,
                                    seed, temperature,
                                    gcs=None if gc is None else [gc] * k,
                                    n_samples=None if n_samples is None else [n_samples] * k,
                                    fold=fold, fold_settings=fold_settings,
                                    normalize=normalize, progress=progress,
                                    voiced_temperature=voiced_temperature, layout=layout,
                                    mel_config=mel_config, postfilter=postfilter)
        return out[0] if items is None else np.stack(out)

    def synthesize_batch(self, features_list: Sequence, speakers: Sequence | None = None,
                         seed: int = 0, temperature: float | None = None, *, gcs=None,
                         n_samples: Sequence | None = None, fold: bool = False,
                         fold_settings: folding.FoldSettings | None = None,
                         normalize: bool = True, progress: bool = False,
                         voiced_temperature: float | None = None, layout: str | None = None,
                         mel_config=None, postfilter: int | None = None) -> list[np.ndarray]:
        """Several utterances at once, generated side by side as one batch.

        ``features_list``: one (Tf_i, D) array per utterance (for a mel bundle, mels as
        :meth:`synthesize` takes them), or a (B, ...) array or tensor. Utterance i uses
        noise stream i, so ``synthesize_batch([a, b])[0]`` equals ``synthesize(a)`` when
        neither folds.
        """
        seed = _check_seed(seed)
        check_mel_config(mel_config, self.feature_spec)
        temperature, voiced = self.resolve_temperatures(temperature, voiced_temperature)
        passes = self.resolve_postfilter(postfilter)
        k = len(features_list)
        if k == 0:
            raise VocoderError("synthesize_batch: empty list of utterances")
        per = lambda seq, name: [None] * k if seq is None else list(seq)
        speakers, gcs, lens = per(speakers, "speakers"), per(gcs, "gcs"), per(n_samples, "n")
        if not (len(speakers) == len(gcs) == len(lens) == k):
            raise VocoderError("synthesize_batch: speakers/gcs/n_samples must have one entry "
                               "per utterance")
        conds = [self._conditioner(f, s, g, n, normalize, f"features[{i}]" if k > 1 else
                                   "features", layout)
                 for i, (f, s, g, n) in enumerate(zip(features_list, speakers, gcs, lens))]
        fold = bool(fold)
        if fold and self.config.context_pool:
            raise VocoderError("fold=True cannot be used with a model with a context stack "
                               f"(context_pool = {self.config.context_pool}): folded "
                               "segments start mid-utterance, where the context stack "
                               "has no past to read; use fold=False")
        settings = fold_settings or folding.FoldSettings()
        jobs, owners = [], []
        for i, c in enumerate(conds):
            segs = (folding.plan(c.n_samples, settings) if fold
                    else [folding.Segment(0, 0, c.n_samples)])
            for seg in segs:
                jobs.append(engine.Job(c, i, seg.warm, seg.length))
                owners.append((i, seg))
        audio = self._run(jobs, seed, temperature, progress, voiced)
        out = []
        for i, c in enumerate(conds):
            mine = [(seg, a) for (o, seg), a in zip(owners, audio) if o == i]
            # Segments are stitched in the model's (pre-emphasised) domain and the whole
            # utterance de-emphasised once, so folding adds no filter transients.
            e = folding.assemble([s for s, _ in mine], [a for _, a in mine],
                                 c.n_samples, settings.crossfade if fold else 0)
            a = deemphasize(e, self.config.preemphasis)[0]
            if passes:
                a = _clip(apply_postfilter(a, self._target_mels(c, normalize),
                                           self.postfilter_mel_config, passes,
                                           self._postfilter_tools()))
            out.append(a)
        return out

    def _run(self, jobs, seed, temperature, progress, voiced=None) -> list[np.ndarray]:
        """Each job's audio in the model's domain (dequantised classes, still
        pre-emphasised when the model is): (length,) float32 per job."""
        classes = [np.empty(j.length, np.int64) for j in jobs]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=max(j.length for j in jobs), unit="step", desc="synthesize")
        try:
            for tau, c in engine.generate(self.backend, jobs, seed, temperature, progress=bar,
                                          voiced_temperature=voiced):
                for b, j in enumerate(jobs):
                    m = min(c.shape[1], j.length - tau)
                    if m > 0:
                        classes[b][tau:tau + m] = c[b, :m]
        finally:
            if bar is not None:
                bar.close()
        q = self.config.quantization_channels
        return [dequantize(c, q) for c in classes]

    def stream(self, features=None, speaker: int | None = None, seed: int = 0,
               temperature: float | None = None, *, gc=None,
               n_samples: int | None = None,
               chunk: int | None = None, normalize: bool = True,
               voiced_temperature: float | None = None, layout: str | None = None,
               mel_config=None, postfilter: int | None = None) -> Iterator[np.ndarray]:
        """Yield float32 audio chunks of ``chunk`` samples (the last may be shorter) as
        they are generated. No folding; conditioning is computed chunk by chunk, so memory
        stays bounded whatever the length. Concatenated, the chunks equal
        ``synthesize(..., fold=False)`` with the same seed. chunk: default the backend's
        (50 ms on the CPU; one D_max period, whole CUDA graphs, on the GPU backends).
        One utterance: a mel bundle takes (n_mels, T), (1, n_mels, T) or (T, n_mels);
        ``layout``, ``mel_config`` and ``postfilter`` as for :meth:`synthesize`; the
        post-filter holds back about one analysis window per pass, which comes out with
        the last chunk."""
        seed = _check_seed(seed)
        check_mel_config(mel_config, self.feature_spec)
        temperature, voiced = self.resolve_temperatures(temperature, voiced_temperature)
        passes = self.resolve_postfilter(postfilter)
        if chunk is None:
            chunk = self.backend.stream_chunk()
        if isinstance(chunk, bool) or not isinstance(chunk, (int, np.integer)) or chunk < 1:
            raise VocoderError(f"chunk must be an int >= 1 (samples), got {chunk!r}")
        cond = self._conditioner(features, speaker, gc, n_samples, normalize, layout=layout)
        job = engine.Job(cond, 0, 0, cond.n_samples)
        q, coef = self.config.quantization_channels, self.config.preemphasis
        last = 0.0  # the de-emphasis filter's state, carried from chunk to chunk
        post = (MelPostfilter(self._target_mels(cond, normalize),
                              self.postfilter_mel_config, cond.n_samples, passes,
                              self._postfilter_tools())
                if passes else None)
        for _, c in engine.generate(self.backend, [job], seed, temperature, chunk=int(chunk),
                                    voiced_temperature=voiced):
            audio, last = classes_to_audio(c[0], q, coef, last)
            if post is None:
                yield audio
            else:
                audio = _clip(post.push(audio))
                if len(audio):
                    yield audio
        if post is not None:
            tail = _clip(post.finish())
            if len(tail):
                yield tail

    def teacher_forced_logits(self, audio: np.ndarray, features=None,
                              speaker: int | None = None, *, gc=None,
                              normalize: bool = True, layout: str | None = None
                              ) -> np.ndarray:
        """Logits (T, A) of every sample of ``audio`` given the true previous samples:
        the likelihood the model assigns (for evaluation and backend parity)."""
        from vocoder.mulaw import silence_class

        audio = np.asarray(audio)
        cond = self._conditioner(features, speaker, gc, len(audio) if features is None
                                 else None, normalize, layout=layout)
        if len(audio) != cond.n_samples:
            raise VocoderError(f"audio has {len(audio)} samples, features cover "
                               f"{cond.n_samples}")
        q = self.config.quantization_channels
        cls = audio_to_classes(audio, q, self.config.preemphasis)
        x = np.concatenate([[silence_class(q)], cls[:-1]]).astype(np.int64)
        job = engine.Job(cond, 0, 0, len(x), teacher=x)
        return np.concatenate([lg[0] for _, lg in engine.teacher_force(self.backend, [job])])


def _clip(audio: np.ndarray) -> np.ndarray:
    """Post-filtered audio back into [-1, 1] (a gain can lift a peak past full scale)."""
    return np.clip(audio, -1.0, 1.0, out=audio)

