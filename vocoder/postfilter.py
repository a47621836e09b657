"""Mel post-filter: pull generated audio's mel spectrum toward the mel it was made from.

A WaveNet's sampling error is close to white in the domain it models, so generated speech
carries a noise floor a fixed distance below each frame's loudest band: it fills the
spectral valleys between formants and the quiet bands of fricatives that the recording
leaves empty. A mel-conditioned model is told the spectrum it should produce, so the
error can be measured and taken out after sampling, like the post-filters of classical
parametric vocoders:

* analyse the generated audio with the bundle's own mel analysis (same window, hop,
  framing and filter bank);
* per frame and band, the gain that turns the generated mel into the given one, limited
  to :data:`MAX_CUT_DB` of cut and :data:`MAX_BOOST_DB` of boost (a post-filter removes
  noise; it cannot create the harmonics a model did not sample);
* spread each band's gain over its FFT bins (log-domain, weighted by the filters; bins
  outside the filter bank take their nearest neighbour's), apply
  it to the frame's spectrum and overlap-add the frames back (weighted overlap-add with
  the analysis window, so a gain of one everywhere returns the input exactly).

Phases and the fine structure come from the WaveNet; the post-filter only rescales
spectral envelopes. ``passes`` repeats it on its own output (each pass needs the next
frames of the previous one, so streaming latency grows with every pass: by the window's
non-zero span less a hop, since samples under the window's zero ends neither enter a
frame nor receive any of it).

:class:`MelPostfilter` is incremental: :meth:`~MelPostfilter.push` takes audio chunks as
they are generated and returns the samples that no later frame can change, and
:meth:`~MelPostfilter.finish` the rest. Every frame is computed the same way whatever
the chunking, so streamed output equals :func:`postfilter` of the whole utterance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from vocoder.errors import VocoderError

#: Largest cut per band, in dB of magnitude: enough to clear the sampling noise from a
#: valley, not so much that a frame the model mis-sampled is silenced.
MAX_CUT_DB = 40.0
#: Largest boost per band, in dB: a band the model left quiet is raised only a little.
MAX_BOOST_DB = 10.0
#: Most passes accepted. Each pass moves the output only part of the way to the target
#: (overlapping frames share every sample), so passes keep helping, less each time; each
#: adds most of a window of streaming latency and an analysis's worth of work.
MAX_PASSES = 16


def check_passes(passes) -> int:
    """``passes`` as an int in [0, MAX_PASSES], or a VocoderError."""
    if isinstance(passes, bool) or not isinstance(passes, (int, np.integer)) or not (
            0 <= passes <= MAX_PASSES):
        raise VocoderError(f"postfilter must be a number of passes from 0 (off) to "
                           f"{MAX_PASSES}, got {passes!r}")
    return int(passes)


class _Pass:
    """One pass of the post-filter over a stream of samples (see the module docstring).

    Works in padded coordinates (sample t of the utterance is padded sample t + left)
    and keeps only the input and overlap-add sums that later frames still need, so
    memory stays bounded however long the utterance."""

    def __init__(self, target: np.ndarray, cfg, n_samples: int, tools: Analysis):
        self.cfg, self.target, self.n, self.tools = cfg, target, n_samples, tools
        hop, n_fft = cfg.hop_length, cfg.n_fft
        self.total = math.ceil(n_samples / hop) * hop  # the analysis pads to whole frames
        self.left = n_fft // 2 if cfg.padding == "center" else (n_fft - hop) // 2
        self.right = n_fft // 2 if cfg.padding == "center" else n_fft - hop - self.left
        self.n_frames = 1 + (self.total + self.left + self.right - n_fft) // hop
        # Magnitude gain per unit of the mel's log: base ** (1 / power).
        self.log_unit = (math.log(10.0) if cfg.log == "log10" else 1.0) / cfg.power
        self.cut = -MAX_CUT_DB * math.log(10.0) / 20.0
        self.boost = MAX_BOOST_DB * math.log(10.0) / 20.0
        self.received = 0
        self.head = np.zeros(0)        # the first samples, until the left pad is known
        self.buf = None                # padded input from padded index x0 on
        self.x0 = 0
        self.ola = np.zeros(0)         # overlap-add sums from padded index o0 on
        self.wsum = np.zeros(0)
        self.o0 = 0
        self.next_frame = 0
        self.emitted = 0               # utterance samples returned so far
        self.finished = False

    def _append(self, x: np.ndarray) -> None:
        if self.buf is not None:
            self.buf = np.concatenate([self.buf, x])
            return
        self.head = np.concatenate([self.head, x])
        if self.cfg.pad_mode == "constant":
            pad = np.zeros(self.left)
        elif len(self.head) > self.left:
            pad = self.head[1:self.left + 1][::-1]
        else:
            return
        self.buf, self.x0 = np.concatenate([pad, self.head]), 0

    def _frames(self, upto: int) -> None:
        """Filter frames next_frame .. upto - 1 into the overlap-add sums."""
        cfg, hop, n_fft = self.cfg, self.cfg.hop_length, self.cfg.n_fft
        i0 = self.next_frame
        if upto <= i0:
            return
        tools = self.tools
        lo, hi = tools.lo, tools.hi
        starts = np.arange(i0, upto) * hop
        # Only the window's non-zero span is read, so a frame is ready as soon as that
        # span has arrived; the zero ends would add exact zeros.
        frames = np.zeros((upto - i0, n_fft))
        frames[:, lo:hi] = (self.buf[starts[:, None] - self.x0 + np.arange(lo, hi)[None, :]]
                            * tools.window[lo:hi])
        spec = np.fft.rfft(frames, axis=1)                                # (k, F)
        power = spec.real ** 2 + spec.imag ** 2
        mag = np.sqrt(power + cfg.eps) if cfg.power == 1.0 else power
        mel = np.maximum((tools.bank @ mag.T).T, cfg.clamp)               # (k, n_mels)
        mel = np.log(mel) if cfg.log == "ln" else np.log10(mel)
        k_t = max(0, min(upto, len(self.target)) - i0)
        gain = np.zeros_like(power)
        if k_t:
            g = (self.target[i0:i0 + k_t] - mel[:k_t]) * self.log_unit
            g = np.clip(g, self.cut, self.boost)                          # (k_t, n_mels)
            gain[:k_t] = (tools.spread @ g.T).T                           # (k_t, F)
        out = np.fft.irfft(spec * np.exp(gain), n=n_fft, axis=1)[:, lo:hi] * tools.window[lo:hi]
        grow = starts[-1] + n_fft - self.o0 - len(self.ola)
        if grow > 0:
            self.ola = np.concatenate([self.ola, np.zeros(grow)])
            self.wsum = np.concatenate([self.wsum, np.zeros(grow)])
        for j, s in enumerate(starts - self.o0):
            self.ola[s + lo:s + hi] += out[j]
            self.wsum[s + lo:s + hi] += tools.w2[lo:hi]
        self.next_frame = upto

    def _emit(self, final: int) -> np.ndarray:
        """Utterance samples before padded index ``final`` not yet returned; then drops
        what no later frame reads."""
        end = min(max(final - self.left, 0), self.n)
        out = np.zeros(0)
        if end > self.emitted:
            a, b = self.emitted + self.left, end + self.left
            ola, wsum = self.ola[a - self.o0:b - self.o0], self.wsum[a - self.o0:b - self.o0]
            ok = wsum > 1e-6
            dry = self.buf[a - self.x0:b - self.x0]
            out = np.where(ok, ola / np.where(ok, wsum, 1.0), dry)
            self.emitted = end
        keep = min(self.emitted + self.left, self.next_frame * self.cfg.hop_length)
        if keep > self.o0:
            self.ola, self.wsum = self.ola[keep - self.o0:], self.wsum[keep - self.o0:]
            self.o0 = keep
        if self.buf is not None and keep > self.x0:
            self.buf, self.x0 = self.buf[keep - self.x0:], keep
        return out

    def push(self, chunk: np.ndarray) -> np.ndarray:
        if self.finished:
            raise VocoderError("post-filter: push after finish")
        self.received += len(chunk)
        if self.received > self.n:
            raise VocoderError(f"post-filter: got {self.received} samples, expected "
                               f"{self.n}")
        self._append(np.asarray(chunk, np.float64))
        if self.buf is None:
            return np.zeros(0)
        hop, lo, hi = self.cfg.hop_length, self.tools.lo, self.tools.hi
        have = self.x0 + len(self.buf)  # padded samples known
        ready = (have - hi) // hop + 1 if have >= hi else 0
        self._frames(min(ready, self.n_frames))
        # Frames from next_frame on start their non-zero span at next_frame * hop + lo.
        return self._emit(min(self.next_frame * hop + lo, have))

    def finish(self) -> np.ndarray:
        if self.received != self.n:
            raise VocoderError(f"post-filter: got {self.received} samples, expected "
                               f"{self.n}")
        self.finished = True
        if self.buf is None:  # shorter than the left pad: pad the whole utterance now
            self.buf, self.x0 = np.zeros(0), 0
            x = np.concatenate([self.head, np.zeros(self.total - self.n)])
            x = (np.pad(x, (self.left, self.right), mode="reflect")
                 if self.cfg.pad_mode == "reflect" else
                 np.pad(x, (self.left, self.right)))
            self.buf = x
        else:
            tail = np.zeros(self.total - self.n)
            if self.cfg.pad_mode == "reflect":
                # The right reflect pad mirrors the last samples of the zero-padded audio.
                end = np.concatenate([self.buf[-(self.right + 1):], tail])
                tail = np.concatenate([tail, end[-(self.right + 1):-1][::-1]])
            else:
                tail = np.concatenate([tail, np.zeros(self.right)])
            self.buf = np.concatenate([self.buf, tail])
        self._frames(self.n_frames)
        return self._emit(self.left + self.n)


@dataclass(frozen=True, eq=False)
class Analysis:
    """What every pass derives from the analysis config, built once by :func:`analysis`.

    ``window``: (n_fft,) analysis window and ``w2`` its square (the overlap-add weight);
    ``lo``, ``hi``: the window's non-zero span ``window[lo:hi]``; ``bank``: the filter
    bank, sparse (n_mels, F); ``spread``: band gains to bin gains, sparse (F, n_mels)."""

    window: np.ndarray
    w2: np.ndarray
    lo: int
    hi: int
    bank: sparse.csr_matrix
    spread: sparse.csr_matrix


def analysis(cfg) -> Analysis:
    """The :class:`Analysis` of ``cfg``: librosa's window and filter bank, as for the mels
    themselves. Building it imports librosa, which takes a moment: callers that
    synthesise often build it once and pass it on."""
    from vocoder.features.mel import _librosa, filter_bank

    librosa = _librosa()
    window = librosa.filters.get_window("hann", cfg.win_length, fftbins=True)
    window = librosa.util.pad_center(window, size=cfg.n_fft)
    bank = filter_bank(cfg)
    w = bank.sum(axis=0)
    # Bins outside the filter bank (below fmin, above fmax, DC) take the gain of the
    # nearest bin inside it: the target says nothing there, and the sampling noise is as
    # loud there as next door.
    inside = np.flatnonzero(w > 0)
    nearest = inside[np.abs(np.arange(len(w))[:, None] - inside[None, :]).argmin(1)]
    # Each FFT bin lies under at most two filters, so both products with the bank are
    # sparse; a band's gain spreads over its bins weighted by the filters, log-domain.
    spread = (bank / np.where(w > 0, w, 1.0))[:, nearest].T
    nonzero = np.flatnonzero(window)
    return Analysis(window, window ** 2, int(nonzero[0]), int(nonzero[-1]) + 1,
                    sparse.csr_matrix(bank), sparse.csr_matrix(spread))


class MelPostfilter:
    """The post-filter of one utterance, fed chunk by chunk.

    ``target``: (T, n_mels) raw log mels in the analysis ``cfg`` (a
    :class:`~vocoder.features.mel.MelConfig`), the ones the audio was generated from;
    ``n_samples``: the utterance's length. :meth:`push` returns float32 samples that are
    final, :meth:`finish` the rest; together exactly ``n_samples``. ``tools``:
    :func:`analysis` of ``cfg`` when the caller has it already."""

    def __init__(self, target: np.ndarray, cfg, n_samples: int, passes: int = 1,
                 tools: Analysis | None = None):
        passes = check_passes(passes)
        target = np.asarray(target, dtype=np.float64)
        if target.ndim != 2 or target.shape[1] != cfg.n_mels:
            raise VocoderError(f"post-filter: target mels must be (T, {cfg.n_mels}), got "
                               f"shape {target.shape}")
        tools = tools if tools is not None else analysis(cfg)
        self.passes = [_Pass(target, cfg, int(n_samples), tools) for _ in range(passes)]

    def _feed(self, k: int, x: np.ndarray) -> np.ndarray:
        """Push ``x`` into pass k and what comes out on through the later passes."""
        for p in self.passes[k:]:
            x = p.push(x)
        return x

    def push(self, chunk: np.ndarray) -> np.ndarray:
        return self._feed(0, np.asarray(chunk, np.float64)).astype(np.float32)

    def finish(self) -> np.ndarray:
        # Each pass's tail goes on through the later passes before they finish.
        out = [self._feed(k + 1, p.finish()) for k, p in enumerate(self.passes)]
        return np.concatenate(out).astype(np.float32)


def postfilter(audio: np.ndarray, target: np.ndarray, cfg, passes: int = 1,
               tools: Analysis | None = None) -> np.ndarray:
    """Whole-utterance :class:`MelPostfilter`: (N,) audio and its (T, n_mels) raw log
    mels -> (N,) float32. ``passes`` 0 returns the audio as it is (float32)."""
    if check_passes(passes) == 0:
        return np.asarray(audio, dtype=np.float32)
    f = MelPostfilter(target, cfg, len(audio), passes, tools)
    return np.concatenate([f.push(audio), f.finish()])
