"""``vocoder evaluate``: how well a trained bundle models and reproduces held-out speech.

Metrics, on the dataset's test split (the train split if it has no test split):

* **NLL**: teacher-forced negative log-likelihood in bits per sample, over every sample of
  the test utterances (up to ``n_nll``), computed with the torch model's parallel forward
  (which every backend's step loop matches within 1e-4 by the step contract).
* **Free-running synthesis** of ``n`` test utterances with ``backend``, then, with pyworld:
  - **F0 error**: median over frames voiced in both of ``|1200 log2(F0_gen / F0_cond)|``
    cents, where F0_cond is the conditioning ``log_f0`` feature and the generated F0 is
    extracted at the same hop (``vocoder.features.f0.extract_f0``, DIO + StoneMask);
  - **V/UV error**: fraction of frames whose voicing differs from the conditioning
    ``vuv`` feature (from the reference audio if the features have none); beside it
    ``vuv_missed_by_onset_ms``, the share of reference-voiced frames left unvoiced, by
    the time since their voiced stretch began (:mod:`vocoder.voicing_onsets`: late
    onsets and drift while running free read differently there);
  - **MCD**: mel-cepstral distortion ``(10 / ln 10) sqrt(2 sum_{d>=1} (c_d - c'_d)^2)`` dB
    between generated and reference audio, where ``c`` is WORLD's mel-cepstral coding of
    the CheapTrick envelope (``pyworld.code_spectral_envelope``, ``MCEP_DIMS``
    coefficients, c0 excluded), frame by frame without time warping (the generated audio
    follows the reference's timing), averaged over frames whose reference level is within
    ``MCD_FLOOR_DB`` of the utterance's loudest frame (silence is left out). Beside it,
    ``mcd_db_quantized_reference``: the same MCD of the reference's own mu-law copy at the
    bundle's ``quantization_channels`` (through its pre-emphasis, if it has one), the least
    a model of those classes can score
    (quantisation noise fills the envelope's valleys in quiet frames, so it is not 0);
  - **pitch control**: the ``log_f0`` feature shifted by +/- ``pitch_semitones``
    (``+ ln 2 * k / 12``): how far the generated F0 moved against the unshifted
    generation (median cents over frames voiced in both), and its error from the target.
* **Intelligibility** of the same ``n`` generated utterances (the ``eval`` extra,
  ``pip install -e .[eval]``), each against its reference recording, which it matches
  sample for sample (the features carry the recording's timing; both are cut to the
  shorter if not):
  - **STOI** ``pystoi.stoi(ref, gen, fs, extended=False)`` (0..1), mean over utterances
    (``stoi_mean``); an utterance too short for STOI (under 30 non-silent 25.6 ms
    frames) gets None and is left out of the mean;
  - **wideband PESQ** ``pesq.pesq(16000, ref, gen, "wb")`` (MOS-LQO, about 1..4.64),
    mean over utterances (``pesq_wb_mean``); 16 kHz bundles only;
  - **ASR word error rate** (``vocoder.asr_wer``): PocketSphinx 5 with its bundled
    ``en-us`` acoustic model and CMU dictionary, no language model but a JSGF grammar
    built from the corpus's sentence generator (one alternative per template of
    ``vocoder/data/grammar.json``, one rule per word list; the two names cmudict lacks
    get ARPAbet pronunciations, any other missing word is dropped from grammar and
    references with a note), batch CMN per clip, one decoder reused for every clip. Each
    clip gets 0.5 s of silence at both ends and a Gaussian noise floor of std 1e-4
    (seeded with the utterance's synthesis seed) before 16-bit PCM conversion. The
    generated audio AND the reference recording are transcribed with these same
    settings and scored with jiwer against the manifest's ``text`` (lower-cased,
    numbers spelled as eSpeak en-us says them, punctuation stripped): ``asr_wer`` and
    ``asr_wer_reference`` are pooled (total substitutions + deletions + insertions /
    total reference words), ``asr_wer_ratio`` = generated / reference (None when the
    reference WER is 0). The references of the built-in corpus score about 5 %; noise
    finds no path through the grammar (empty transcript, 100 %); the grammar is a strong
    prior, though, so noise-excited audio with the right timing and formants (the
    shipped demo model) already scored 46 % on 8 utterances: compare the ratio. Words
    outside the grammar (a dataset not made by ``vocoder corpus espeak``) are counted in
    a note: the WERs are only meaningful for the built-in corpus. ``asr=False``
    (``--no-asr``) skips it.

Without pyworld the F0, V/UV, MCD and pitch parts are skipped with a note in the result;
so are STOI, PESQ and ASR without the ``eval`` extra (PESQ and ASR also for audio that is
not at 16 kHz).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.errors import VocoderError
from vocoder.features.pitch_shift import shift_log_f0
from vocoder.voicing_onsets import ONSET_BINS_MS, missed_by_onset, onset_bin_labels

MCEP_DIMS = 25
MCD_FLOOR_DB = 40.0
_CENTS = 1200.0 / math.log(2.0)
_MCD_K = 10.0 / math.log(10.0) * math.sqrt(2.0)


def nll_by_voicing(model, utterances: list, vuv_feature: int | None
                   ) -> tuple[dict[str, Any], list[float]]:
    """Teacher-forced NLL in bits per sample of whole utterances, over all samples and
    split by the voicing flag of each sample's frame (column ``vuv_feature`` of the
    utterance's features; None: no split).

    utterances: :class:`vocoder.train.data.Utterance` with the model's conditioning input.
    Returns ``nll_bits_per_sample``, ``nll_voiced_bits``, ``nll_unvoiced_bits`` and the
    voiced fraction of the samples (None where there is nothing to average), and the bits
    per sample of each utterance.
    """
    import torch
    import torch.nn.functional as F

    from vocoder.train.data import collate, whole_utterance

    hop = model.cfg.hop_length
    sums = {"all": [0.0, 0], "voiced": [0.0, 0], "unvoiced": [0.0, 0]}
    per = []
    model.eval()
    with torch.no_grad():
        for u in utterances:
            g = collate([whole_utterance(u, model.cfg)])[0]
            spk = torch.from_numpy(g.speaker) if model.cfg.n_speakers else None
            logits = model(torch.from_numpy(g.x), torch.from_numpy(g.features), spk, None,
                           g.frame_offset, channels_last=True)[0]
            nats = F.cross_entropy(logits, torch.from_numpy(g.target[0]),
                                   reduction="none").double().numpy()
            per.append(float(nats.mean() / math.log(2.0)))
            sums["all"][0] += nats.sum()
            sums["all"][1] += len(nats)
            if vuv_feature is not None:
                voiced = np.repeat(u.features[:, vuv_feature] > 0.5, hop)[: len(nats)]
                for key, mask in (("voiced", voiced), ("unvoiced", ~voiced)):
                    sums[key][0] += nats[mask].sum()
                    sums[key][1] += int(mask.sum())
    bits = {k: (v[0] / v[1] / math.log(2.0) if v[1] else None) for k, v in sums.items()}
    return {"nll_bits_per_sample": bits["all"], "nll_voiced_bits": bits["voiced"],
            "nll_unvoiced_bits": bits["unvoiced"],
            "voiced_fraction": sums["voiced"][1] / sums["all"][1] if sums["all"][1] else None
            }, per


def _pyworld():
    """pyworld, or None. Goes through the feature module's import (which works around
    old pyworld releases needing pkg_resources) when it is there."""
    try:
        from vocoder.features.f0 import _import_pyworld
    except ImportError:
        try:
            import pyworld
        except ImportError:
            return None
        return pyworld
    try:
        return _import_pyworld()
    except (VocoderError, ImportError, OSError):
        return None


def f0_track(audio: np.ndarray, sample_rate: int, hop_length: int, n_frames: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """(log_f0 (n_frames,), voiced bool (n_frames,)) of float audio at the features' hop."""
    try:
        from vocoder.features.f0 import extract_f0
    except ImportError:
        extract_f0 = None
    if extract_f0 is not None:
        log_f0, vuv = extract_f0(np.asarray(audio, np.float64), sample_rate, hop_length,
                                 n_frames=n_frames)
        return log_f0.astype(np.float64), vuv > 0
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.dio(x, sample_rate, frame_period=1000.0 * hop_length / sample_rate)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    f0 = np.pad(f0, (0, max(0, n_frames - f0.size)), mode="edge")[:n_frames]
    voiced = f0 > 0
    return np.log(np.where(voiced, f0, 1.0)), voiced


def mel_cepstra(audio: np.ndarray, sample_rate: int, hop_length: int, n_frames: int,
                dims: int = MCEP_DIMS) -> np.ndarray:
    """(n_frames, dims) WORLD mel-cepstral coding of the CheapTrick envelope."""
    pw = _pyworld()
    x = np.ascontiguousarray(audio, dtype=np.float64)
    f0, t = pw.dio(x, sample_rate, frame_period=1000.0 * hop_length / sample_rate)
    f0 = pw.stonemask(x, f0, t, sample_rate)
    sp = pw.cheaptrick(x, f0, t, sample_rate)
    mc = pw.code_spectral_envelope(sp, sample_rate, dims)
    if mc.shape[0] < n_frames:
        mc = np.concatenate([mc, np.repeat(mc[-1:], n_frames - mc.shape[0], 0)])
    return mc[:n_frames]


def _mcd_frames(mc_a: np.ndarray, mc_b: np.ndarray) -> np.ndarray:
    """(n_frames,) MCD in dB between two (n_frames, dims) mel-cepstra, c0 left out."""
    return _MCD_K * np.sqrt(np.sum((mc_a - mc_b)[:, 1:] ** 2, axis=1))


def _frame_level_db(audio: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    frames = np.asarray(audio[: n_frames * hop], np.float64).reshape(n_frames, hop)
    return 10.0 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)


@dataclass
class _Pooled:
    f0_cents: list
    vuv_wrong: int = 0
    vuv_frames: int = 0
    mcd: list | None = None
    mcd_quantized: list | None = None
    # reference-voiced frames missed / all of them, per onset bin (vocoder.voicing_onsets)
    onset_missed: np.ndarray = field(default_factory=lambda: np.zeros(len(ONSET_BINS_MS), int))
    onset_total: np.ndarray = field(default_factory=lambda: np.zeros(len(ONSET_BINS_MS), int))


@dataclass
class _Intelligibility:
    """Which of the ``eval`` extra's metrics run, and what they pooled so far.

    ``recognizer``: the cached PocketSphinx recogniser, or None when ASR is skipped;
    ``asr_gen``/``asr_ref``: (errors, reference words) per utterance, generated audio and
    reference recording.
    """

    stoi: bool
    pesq: bool
    recognizer: Any = None
    stoi_values: list = field(default_factory=list)
    pesq_values: list = field(default_factory=list)
    asr_gen: list = field(default_factory=list)
    asr_ref: list = field(default_factory=list)
    asr_seconds: float = 0.0
    asr_clips: int = 0
    out_of_grammar: int = 0
    untexted: int = 0


def _intelligibility_setup(sample_rate: int, asr: bool, notes: list[str]) -> _Intelligibility:
    """What of STOI, PESQ and ASR can run here, with a note in ``notes`` for each that
    cannot (``eval`` extra not installed, audio not at 16 kHz, ``asr=False``)."""
    from vocoder import asr_wer, intelligibility

    missing = intelligibility.missing_packages()
    if missing:
        what = " and ".join({"pystoi": "STOI", "pesq": "PESQ"}[m] for m in missing)
        notes.append(f"{', '.join(missing)} not importable: {what} skipped "
                     f"({asr_wer.PIP_HINT})")
    pesq_ok = "pesq" not in missing and sample_rate == intelligibility.PESQ_RATE
    if "pesq" not in missing and not pesq_ok:
        notes.append(f"wideband PESQ needs {intelligibility.PESQ_RATE} Hz audio, the bundle "
                     f"is at {sample_rate} Hz: PESQ skipped")
    tools = _Intelligibility(stoi="pystoi" not in missing, pesq=pesq_ok)
    if not asr:
        notes.append("ASR word error rate skipped (asked not to run it)")
        return tools
    missing = asr_wer.missing_packages()
    if missing:
        notes.append(f"{', '.join(missing)} not importable: ASR word error rate skipped "
                     f"({asr_wer.PIP_HINT})")
    elif sample_rate != asr_wer.SAMPLE_RATE:
        notes.append(f"PocketSphinx's model needs {asr_wer.SAMPLE_RATE} Hz audio, the "
                     f"bundle is at {sample_rate} Hz: ASR word error rate skipped")
    else:
        try:
            tools.recognizer = asr_wer.shared_recognizer()
        except (RuntimeError, ValueError, OSError) as exc:
            notes.append(f"PocketSphinx failed to start ({exc}): ASR word error rate skipped")
        else:
            if tools.recognizer.dropped:
                notes.append(f"ASR: words without a pronunciation in PocketSphinx's "
                             f"dictionary, left out of the grammar and the references: "
                             f"{', '.join(tools.recognizer.dropped)}")
    return tools


def _intelligibility_row(tools: _Intelligibility, text: str, ref: np.ndarray,
                         gen: np.ndarray, sample_rate: int, seed: int) -> dict[str, Any]:
    """STOI, PESQ and ASR of one utterance: generated ``gen`` (T,) against the reference
    recording ``ref`` (T,), both float; ``text`` is what was said. Pools into ``tools``."""
    from vocoder import asr_wer, intelligibility

    row: dict[str, Any] = {}
    if tools.stoi:
        row["stoi"] = _round(intelligibility.stoi_score(ref, gen, sample_rate), 4)
        if row["stoi"] is not None:
            tools.stoi_values.append(row["stoi"])
    if tools.pesq:
        row["pesq_wb"] = _round(intelligibility.pesq_wb(ref, gen, sample_rate), 3)
        if row["pesq_wb"] is not None:
            tools.pesq_values.append(row["pesq_wb"])
    rec = tools.recognizer
    if rec is None:
        return row
    words = asr_wer.normalize_text(text, rec.dropped)
    if not words:
        tools.untexted += 1
        return row
    tools.out_of_grammar += sum(w not in rec.vocabulary for w in words.split())
    t0 = time.perf_counter()
    # both clips through the same decoder, padding and noise seed: only the audio differs
    hyps = {key: asr_wer.transcribe(rec, audio, seed=seed)
            for key, audio in (("asr_hyp", gen), ("asr_ref_hyp", ref))}
    tools.asr_seconds += time.perf_counter() - t0
    tools.asr_clips += 2
    for key, pooled in (("asr_hyp", tools.asr_gen), ("asr_ref_hyp", tools.asr_ref)):
        errors, n_words = asr_wer.word_errors(words, hyps[key])
        pooled.append((errors, n_words))
        row[key] = hyps[key]
        row[key.replace("hyp", "wer")] = round(errors / n_words, 4)
    return row


def _intelligibility_summary(tools: _Intelligibility, notes: list[str]) -> dict[str, Any]:
    """Pooled STOI/PESQ means and WERs for the result dict (only the keys of what ran)."""
    from vocoder import asr_wer

    out: dict[str, Any] = {}
    mean = lambda v: round(float(np.mean(v)), 4) if v else None
    if tools.stoi:
        out["stoi_mean"] = mean(tools.stoi_values)
    if tools.pesq:
        out["pesq_wb_mean"] = mean(tools.pesq_values)
    if tools.recognizer is None:
        return out
    gen, ref = asr_wer.pooled_wer(tools.asr_gen), asr_wer.pooled_wer(tools.asr_ref)
    out["asr_wer"] = _round(gen, 4)
    out["asr_wer_reference"] = _round(ref, 4)
    # undefined when the recogniser gets every reference word right
    out["asr_wer_ratio"] = round(gen / ref, 3) if gen is not None and ref else None
    out["asr_utterances"] = len(tools.asr_gen)
    out["asr_words"] = sum(w for _, w in tools.asr_ref)
    out["asr_seconds_per_clip"] = (round(tools.asr_seconds / tools.asr_clips, 3)
                                   if tools.asr_clips else None)
    if tools.untexted:
        notes.append(f"ASR: {tools.untexted} utterance(s) without text in the manifest "
                     f"not transcribed")
    if tools.out_of_grammar:
        notes.append(f"ASR: {tools.out_of_grammar} of {out['asr_words']} reference words "
                     f"are not in the grammar built from vocoder/data/grammar.json and cannot "
                     f"be recognised: the WERs only mean something for the built-in corpus")
    return out


def evaluate(bundle: str | Path, data_dir: str | Path, n: int = 4,
             backend: str = "onnxruntime", *, seed: int = 0, n_nll: int | None = None,
             pitch_semitones: float = 3.0, fold: bool = False,
             temperature: float | None = None, voiced_temperature: float | None = None,
             asr: bool = True, postfilter: int | None = None,
             out: str | Path | None = None, audio_dir: str | Path | None = None,
             progress: bool = False) -> dict[str, Any]:
    """Evaluate ``bundle`` on the test split of the dataset ``data_dir``.

    ``n`` utterances are synthesised (three times each when the pitch check runs);
    ``n_nll`` caps the utterances scored for NLL (default: all); ``fold`` goes to
    :meth:`~vocoder.api.Vocoder.synthesize` (default: the backend's choice), and so does
    the sampling ``temperature`` and ``voiced_temperature`` and the mel ``postfilter``
    passes (default: the bundle's).
    ``asr=False`` skips the ASR word error rate, the slowest part of the ``eval`` extra.
    Returns the result
    dict (see the module docstring), also written as JSON to ``out`` when given;
    generated audio goes to ``audio_dir`` when given.
    """
    from vocoder.api import Vocoder
    from vocoder.data.corpus import load_manifest
    from vocoder.emphasis import audio_to_classes, classes_to_audio
    from vocoder.excitation import with_phase
    from vocoder.train.data import Utterance

    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise VocoderError(f"n must be an int >= 0, got {n!r}")
    voc = Vocoder.load(bundle, backend=backend)
    try:
        resolved = voc.resolve_temperatures(temperature, voiced_temperature)
        postfilter = voc.resolve_postfilter(postfilter)
        cfg, spec = voc.config, voc.feature_spec
        ds = load_manifest(data_dir)
        split = "test" if ds.split("test") else "train"
        entries = ds.split(split)
        names = list(ds.feature_names)
        if spec is not None:
            if spec.dim != len(names):
                raise VocoderError(f"the bundle takes {spec.dim} features, the dataset "
                                   f"{data_dir} has {len(names)}")
            if not all(a == b or a == f"f{i}" for i, (a, b) in
                       enumerate(zip(spec.names, names))):
                raise VocoderError(f"the dataset's feature names differ from the bundle's "
                                   f"(first: {names[:3]} vs {list(spec.names[:3])})")
        if ds.sample_rate != cfg.sample_rate or ds.hop_length != cfg.hop_length:
            raise VocoderError(f"the dataset is at {ds.sample_rate} Hz, hop {ds.hop_length}; "
                               f"the bundle at {cfg.sample_rate} Hz, hop {cfg.hop_length}")
        speaker_of = (lambda e: e.speaker) if cfg.n_speakers else (lambda e: None)
        result: dict[str, Any] = {"bundle": str(bundle),
                                  "weights_sha256": voc.bundle.weights_sha256,
                                  "data": str(data_dir), "split": split,
                                  "backend": voc.backend_name, "seed": seed,
                                  "temperature": resolved[0],
                                  "voiced_temperature": resolved[1],
                                  "postfilter": postfilter,
                                  "notes": []}
        if split == "train":
            result["notes"].append("the dataset has no test split: evaluated on train")

        # -- teacher-forced NLL --------------------------------------------------------
        scored = entries if n_nll is None else entries[:n_nll]
        model = voc.bundle.build_model()
        utts = []
        for e in scored:
            audio, feats = ds.load(e)
            f = spec.normalize(feats) if spec is not None else feats.astype(np.float32)
            utts.append(Utterance(e.id, e.speaker or 0,
                                  audio_to_classes(audio, cfg.quantization_channels,
                                                   cfg.preemphasis),
                                  with_phase(f, cfg)))
        nll, per = nll_by_voicing(model, utts, names.index("vuv") if "vuv" in names else None)
        result.update(nll)
        result["nll_utterances"] = len(utts)
        del model

        # -- free-running synthesis ----------------------------------------------------
        chosen = entries[:n]
        pw_ok = _pyworld() is not None
        if not pw_ok:
            result["notes"].append("pyworld is not importable: F0, V/UV, MCD and pitch "
                                   "checks skipped (pip install pyworld)")
        i_f0 = names.index("log_f0") if "log_f0" in names else None
        i_vuv = names.index("vuv") if "vuv" in names else None
        if i_f0 is None and chosen:
            result["notes"].append("the features have no 'log_f0': F0 and pitch checks "
                                   "skipped")
        tools = _intelligibility_setup(cfg.sample_rate, asr, result["notes"])
        pooled = _Pooled([], mcd=[], mcd_quantized=[])
        moved: dict[str, list] = {"up": [], "down": []}
        rows, synth_time, synth_samples = [], 0.0, 0
        if audio_dir is not None:
            Path(audio_dir).mkdir(parents=True, exist_ok=True)
        sr, hop = cfg.sample_rate, cfg.hop_length
        for k, e in enumerate(chosen):
            audio16, feats = ds.load(e)
            ref = audio16.astype(np.float64) / 32768.0
            tf = feats.shape[0]
            t0 = time.perf_counter()
            # Dataset features are (frames, D), whatever a mel bundle reads from a shape.
            gen = voc.synthesize(feats, speaker=speaker_of(e), seed=seed + k, fold=fold,
                                 temperature=temperature,
                                 voiced_temperature=voiced_temperature, progress=progress,
                                 postfilter=postfilter,
                                 layout="frames-first")
            synth_time += time.perf_counter() - t0
            synth_samples += len(gen)
            row: dict[str, Any] = {"id": e.id, "seconds": round(len(gen) / sr, 3),
                                   "nll_bits": round(per[scored.index(e)], 4)
                                   if e in scored else None}
            if audio_dir is not None:
                from vocoder.fileio import write_wav_atomic

                write_wav_atomic(Path(audio_dir) / f"{e.id}.wav", gen, sr)
            if pw_ok:
                log_f0_gen, voiced_gen = f0_track(gen, sr, hop, tf)
                if i_vuv is not None:
                    voiced_ref = feats[:, i_vuv] > 0.5
                else:
                    voiced_ref = f0_track(ref, sr, hop, tf)[1]
                wrong = int(np.sum(voiced_gen != voiced_ref))
                pooled.vuv_wrong += wrong
                pooled.vuv_frames += tf
                row["vuv_error"] = round(wrong / tf, 4)
                missed, total = missed_by_onset(voiced_ref, voiced_gen, 1000.0 * hop / sr)
                pooled.onset_missed += missed
                pooled.onset_total += total
                if i_f0 is not None:
                    both = voiced_gen & voiced_ref
                    cents = np.abs(log_f0_gen - feats[:, i_f0]) * _CENTS
                    pooled.f0_cents.extend(cents[both].tolist())
                    row["f0_error_cents"] = (round(float(np.median(cents[both])), 2)
                                             if both.any() else None)
                level = _frame_level_db(ref, hop, tf)
                loud = level > level.max() - MCD_FLOOR_DB
                mc_ref = mel_cepstra(ref, sr, hop, tf)
                mcd = _mcd_frames(mel_cepstra(gen, sr, hop, tf), mc_ref)
                pooled.mcd.extend(mcd[loud].tolist())
                row["mcd_db"] = round(float(np.mean(mcd[loud])), 3)
                copy, _ = classes_to_audio(
                    audio_to_classes(ref, cfg.quantization_channels, cfg.preemphasis),
                    cfg.quantization_channels, cfg.preemphasis)
                pooled.mcd_quantized.extend(
                    _mcd_frames(mel_cepstra(copy, sr, hop, tf), mc_ref)[loud].tolist())
                if i_f0 is not None and pitch_semitones:
                    for name, sign in (("up", 1.0), ("down", -1.0)):
                        shifted = shift_log_f0(feats, i_f0, sign * pitch_semitones)
                        g2 = voc.synthesize(shifted, speaker=speaker_of(e), seed=seed + k,
                                            fold=fold, temperature=temperature,
                                            voiced_temperature=voiced_temperature,
                                            postfilter=postfilter,
                                            layout="frames-first")
                        lf2, v2 = f0_track(g2, sr, hop, tf)
                        both = v2 & voiced_gen
                        delta = (lf2 - log_f0_gen)[both] * _CENTS
                        moved[name].extend(delta.tolist())
                        row[f"pitch_{name}_cents"] = (round(float(np.median(delta)), 1)
                                                      if both.any() else None)
                        if audio_dir is not None:
                            write_wav_atomic(Path(audio_dir) / f"{e.id}_pitch_{name}.wav",
                                             g2, sr)
            row.update(_intelligibility_row(tools, e.text, ref, gen, sr, seed + k))
            rows.append(row)

        result["synthesized"] = len(chosen)
        result["realtime_factor"] = (round(synth_time / (synth_samples / sr), 3)
                                     if synth_samples else None)
        med = lambda v: round(float(np.median(v)), 2) if len(v) else None
        if pw_ok and chosen:
            result["f0_error_cents_median"] = med(pooled.f0_cents)
            result["vuv_error_rate"] = round(pooled.vuv_wrong / max(pooled.vuv_frames, 1), 4)
            result["vuv_missed_by_onset_ms"] = {
                label: (round(float(m / t), 4) if t else None)
                for label, m, t in zip(onset_bin_labels(), pooled.onset_missed,
                                       pooled.onset_total)}
            result["mcd_db"] = (round(float(np.mean(pooled.mcd)), 3) if pooled.mcd else None)
            result["mcd_db_quantized_reference"] = (
                round(float(np.mean(pooled.mcd_quantized)), 3) if pooled.mcd_quantized
                else None)
            if i_f0 is not None and pitch_semitones:
                target = 100.0 * pitch_semitones
                up, down = med(moved["up"]), med(moved["down"])
                result["pitch_shift"] = {
                    "semitones": pitch_semitones, "target_cents": target,
                    "up_cents": up, "down_cents": down,
                    "up_error_cents": None if up is None else round(abs(up - target), 2),
                    "down_error_cents": None if down is None else round(abs(down + target), 2),
                }
        if chosen:
            result.update(_intelligibility_summary(tools, result["notes"]))
        result["per_utterance"] = rows
    finally:
        voc.close()
    if out is not None:
        from vocoder.fileio import write_text_atomic

        write_text_atomic(out, json.dumps(result, indent=2) + "\n")
    return result


def format_report(result: dict[str, Any]) -> str:
    """The result of :func:`evaluate` as a table."""
    fmt = lambda v, unit="": "n/a" if v is None else f"{v}{unit}"
    lines = [f"bundle      {result['bundle']}",
             f"data        {result['data']} ({result['split']} split)",
             f"backend     {result['backend']}"
             + (f", mel post-filter {result['postfilter']} pass(es)"
                if result.get("postfilter") else ""),
             "",
             f"{'metric':<34}{'value':>12}",
             f"{'-' * 46}",
             f"{'NLL, teacher forced (bits/sample)':<34}"
             f"{fmt(_round(result.get('nll_bits_per_sample'), 4)):>12}",
             f"{'  in voiced frames':<34}"
             f"{fmt(_round(result.get('nll_voiced_bits'), 4)):>12}",
             f"{'  in unvoiced frames':<34}"
             f"{fmt(_round(result.get('nll_unvoiced_bits'), 4)):>12}",
             f"{'  utterances scored':<34}{result.get('nll_utterances', 0):>12}",
             f"{'utterances synthesised':<34}{result.get('synthesized', 0):>12}",
             f"{'real-time factor':<34}{fmt(result.get('realtime_factor')):>12}"]
    if "vuv_error_rate" in result:
        lines += [f"{'F0 error, median (cents)':<34}"
                  f"{fmt(result.get('f0_error_cents_median')):>12}",
                  f"{'V/UV error rate':<34}{fmt(result.get('vuv_error_rate')):>12}",
                  "  voiced frames missed, by ms",
                  *(f"{'    since the onset ' + label:<34}{fmt(rate):>12}"
                    for label, rate in (result.get("vuv_missed_by_onset_ms") or {}).items()),
                  f"{'MCD (dB)':<34}{fmt(result.get('mcd_db')):>12}",
                  f"{'  of the reference mu-law copy':<34}"
                  f"{fmt(result.get('mcd_db_quantized_reference')):>12}"]
    if "stoi_mean" in result:
        lines.append(f"{'STOI, mean':<34}{fmt(result['stoi_mean']):>12}")
    if "pesq_wb_mean" in result:
        lines.append(f"{'PESQ wideband, mean (MOS-LQO)':<34}{fmt(result['pesq_wb_mean']):>12}")
    if "asr_wer" in result:
        lines += [f"{'ASR WER, generated':<34}{fmt(result['asr_wer']):>12}",
                  f"{'ASR WER, reference recordings':<34}"
                  f"{fmt(result['asr_wer_reference']):>12}",
                  f"{'ASR WER ratio (generated / ref.)':<34}"
                  f"{fmt(result['asr_wer_ratio']):>12}"]
    ps = result.get("pitch_shift")
    if ps:
        lines += [f"{'pitch +' + str(ps['semitones']) + ' st moved (cents)':<34}"
                  f"{fmt(ps['up_cents']):>12}",
                  f"{'pitch -' + str(ps['semitones']) + ' st moved (cents)':<34}"
                  f"{fmt(ps['down_cents']):>12}"]
    rows = result.get("per_utterance") or []
    if rows:
        lines += _utterance_table(rows, [("sec", "seconds", 7), ("bits", "nll_bits", 8),
                                         ("F0 c", "f0_error_cents", 9),
                                         ("V/UV", "vuv_error", 8), ("MCD", "mcd_db", 8),
                                         ("+st", "pitch_up_cents", 8),
                                         ("-st", "pitch_down_cents", 8)], fmt)
    if any(k in r for r in rows for k in ("stoi", "pesq_wb", "asr_wer")):
        lines += _utterance_table(rows, [("STOI", "stoi", 8), ("PESQ", "pesq_wb", 7),
                                         ("WER", "asr_wer", 8), ("ref WER", "asr_ref_wer", 9)],
                                  fmt, tail=("generated audio heard as", "asr_hyp"))
    lines += [f"note: {n}" for n in result.get("notes", [])]
    return "\n".join(lines)


def _utterance_table(rows, columns, fmt, tail=None) -> list[str]:
    """A blank line, a header and one line per utterance: ``columns`` are (title, key,
    width); ``tail`` (title, key) a free-text last column."""
    head = f"{'utterance':<16}" + "".join(f"{t:>{w}}" for t, _, w in columns)
    lines = ["", head + (f"  {tail[0]}" if tail else "")]
    for r in rows:
        line = f"{r['id'][:15]:<16}" + "".join(f"{fmt(r.get(k)):>{w}}" for _, k, w in columns)
        lines.append(line + (f"  {(r.get(tail[1]) or '')[:40]}" if tail else ""))
    return lines


def _round(v, digits):
    return None if v is None else round(v, digits)
