"""Live playback: generate in a producer thread, play through a sounddevice callback.

    producer thread --chunks--> SampleQueue (bounded ring) --copy--> OutputStream callback

The callback only copies from a preallocated ring into PortAudio's buffer: no array
allocation, no lock, no waiting. When the ring is empty it writes zeros and counts an
underrun. Playback starts once enough audio is buffered that, at the generation speed
measured so far, the ring will not run dry before the end (:func:`preroll_samples`):
no pre-roll at all when generation is faster than real time.

Headless machines: PortAudio reaches PulseAudio through ALSA's ``pulse`` device, and
PulseAudio's ``module-null-sink`` is a sink that keeps real time (ALSA's plain ``null``
PCM is not clocked, so it cannot show underruns).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vocoder.errors import VocoderError

#: Generation must be this much faster than real time for zero pre-roll; below that the
#: pre-roll is computed from the measured rate divided by this factor (timing jitter).
DEFAULT_HEADROOM = 1.1
#: An output device that starts empty pulls audio faster than real time until its buffer
#: is full: a little more than its reported latency on ALSA's PulseAudio device. An automatic
#: pre-roll holds at least this many device latencies, so that fill never finds the
#: queue empty even when generation is faster than real time.
DEVICE_FILL = 2.0

_HEADLESS_HINT = (
    "on a headless machine, start PulseAudio with a null sink: `pulseaudio --start "
    "--exit-idle-time=-1 && pactl load-module module-null-sink sink_name=null && "
    "pactl set-default-sink null` (packages pulseaudio, libasound2-plugins)")


def _sounddevice():
    """Import sounddevice, or a VocoderError saying what is missing."""
    try:
        import sounddevice
    except ImportError:
        raise VocoderError("live playback needs the sounddevice package: "
                           "pip install 'vocoder[audio]' (or pip install sounddevice)"
                           ) from None
    except OSError as e:  # sounddevice raises OSError when libportaudio is absent
        raise VocoderError(f"live playback needs the PortAudio library ({e}): "
                           "apt-get install libportaudio2") from None
    return sounddevice


def list_output_devices() -> list[dict[str, Any]]:
    """Output devices PortAudio sees: index, name, host API, channels, default rate,
    and whether it is the default output."""
    sd = _sounddevice()
    try:
        default = sd.default.device[1]
        devices = sd.query_devices()
        apis = sd.query_hostapis()
    except Exception as e:  # PortAudioError on a broken setup
        raise VocoderError(f"PortAudio cannot list devices: {e}") from None
    return [{"index": i, "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "channels": d["max_output_channels"],
             "default_samplerate": d["default_samplerate"], "default": i == default}
            for i, d in enumerate(devices) if d["max_output_channels"] > 0]


def check_output_device(device=None) -> dict[str, Any]:
    """The output device ``device`` (index, name substring, or None for the default);
    a VocoderError naming the problem when PortAudio or the device is missing."""
    sd = _sounddevice()
    outputs = list_output_devices()
    if not outputs:
        raise VocoderError("no audio output device: PortAudio sees none; write a file with "
                           f"--out instead, or {_HEADLESS_HINT}")
    try:
        return dict(sd.query_devices(device, kind="output"))
    except (ValueError, sd.PortAudioError) as e:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in outputs)
        raise VocoderError(f"audio device {device!r} not usable ({e}); output devices: "
                           f"{names}") from None


def preroll_samples(n_samples: int, rate: float, sample_rate: int,
                    headroom: float = DEFAULT_HEADROOM) -> int:
    """Samples to buffer before starting so that playback never waits for generation.

    Generation at ``rate`` samples/s makes sample k at k / rate; playback started after
    P = rate * t0 buffered samples plays it at t0 + k / sample_rate. Requiring that for
    every k <= n gives P = n (1 - rate / sample_rate), zero when rate >= sample_rate.
    The rate is discounted by ``headroom`` first.
    """
    if n_samples <= 0:
        return 0
    r = max(rate, 0.0) / headroom
    if r >= sample_rate:
        return 0
    return min(n_samples, math.ceil(n_samples * (1.0 - r / sample_rate)))


class SampleQueue:
    """A bounded single-producer single-consumer ring of float32 samples.

    The producer (one thread) calls :meth:`write`, which waits for space; the consumer
    (the audio callback) calls :meth:`read_into`, which never waits or allocates. Counters
    only grow and each is written by one side, after its copy, so no lock is needed.
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"queue capacity must be >= 1, got {capacity}")
        self.buf = np.zeros(capacity, np.float32)
        self.capacity = capacity
        self.written = 0   # samples ever written (producer)
        self.read = 0      # samples ever read (consumer)

    @property
    def available(self) -> int:
        return self.written - self.read

    def write(self, samples: np.ndarray, stop: threading.Event | None = None,
              poll: float = 0.002) -> bool:
        """Append ``samples``, waiting while the ring is full. False if ``stop`` was set."""
        samples = np.asarray(samples, np.float32).reshape(-1)
        done, n = 0, len(samples)
        while done < n:
            free = self.capacity - (self.written - self.read)
            if free == 0:
                if stop is not None and stop.is_set():
                    return False
                time.sleep(poll)
                continue
            m = min(free, n - done)
            i = self.written % self.capacity
            first = min(m, self.capacity - i)
            self.buf[i:i + first] = samples[done:done + first]
            self.buf[:m - first] = samples[done + first:done + m]
            self.written += m  # publish after the copy
            done += m
        return True

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` samples into ``out``; returns how many were copied."""
        n = min(len(out), self.written - self.read)
        if n <= 0:
            return 0
        i = self.read % self.capacity
        first = min(n, self.capacity - i)
        out[:first] = self.buf[i:i + first]
        if n > first:
            out[first:n] = self.buf[:n - first]
        self.read += n  # release the space after the copy
        return n


@dataclass(frozen=True)
class PlaybackReport:
    """What happened during one playback.

    underruns: callbacks (before the last sample) that found the queue short and played
    zeros; underrun_samples: how many zeros that inserted. device_underflows: PortAudio's
    own output-underflow flags (the device starved while our callback was late).
    real_time_factor: generation time / audio duration (< 1 is faster than real time).
    playback_seconds: stream start to the last sample handed to the device.
    """

    samples: int
    sample_rate: int
    audio_seconds: float
    generation_seconds: float
    generation_rate: float
    real_time_factor: float
    preroll_samples: int
    preroll_seconds: float
    wait_seconds: float
    playback_seconds: float
    underruns: int
    underrun_samples: int
    device_underflows: int
    callbacks: int
    device: str
    latency_seconds: float
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"played {self.audio_seconds:.2f} s on {self.device!r}: "
                f"{self.underruns} underruns ({self.underrun_samples} samples of silence), "
                f"pre-roll {self.preroll_seconds:.2f} s ({self.preroll_samples} samples), "
                f"real-time factor {self.real_time_factor:.2f} "
                f"({self.generation_rate:,.0f} samples/s), playback "
                f"{self.playback_seconds:.2f} s, device underflows {self.device_underflows}")


class _Producer(threading.Thread):
    """Pulls chunks from ``chunks`` into ``queue``; times generation only (not the
    waits for space), so the rate estimate is not distorted by a full queue."""

    def __init__(self, chunks: Iterable[np.ndarray], queue: SampleQueue, n_samples: int):
        super().__init__(name="vocoder-producer", daemon=True)
        self.chunks = chunks
        self.queue = queue
        self.n_samples = n_samples
        self.stop = threading.Event()
        self.done = False
        self.error: BaseException | None = None
        self.generated = 0
        self.compute = 0.0        # seconds spent inside the generator
        self.first_len = 0
        self.first_compute = 0.0  # includes start-up (conditioning, JIT): kept apart
        self.chunks_made = 0

    def run(self) -> None:
        it: Iterator = iter(self.chunks)
        try:
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    chunk = next(it)
                except StopIteration:
                    break
                dt = time.perf_counter() - t0
                chunk = np.asarray(chunk, np.float32).reshape(-1)
                room = self.n_samples - self.generated
                if len(chunk) > room:
                    chunk = chunk[:room]
                self.compute += dt
                if self.chunks_made == 0:
                    self.first_len, self.first_compute = len(chunk), dt
                self.chunks_made += 1
                if not self.queue.write(chunk, self.stop):
                    break
                self.generated += len(chunk)
                if self.generated >= self.n_samples:
                    break
        except BaseException as e:  # re-raised in the caller's thread
            self.error = e
        finally:
            self.done = True

    def rate(self) -> float:
        """Samples/s, leaving out the first chunk's start-up when there is more."""
        if self.chunks_made >= 2 and self.compute > self.first_compute:
            return (self.generated - self.first_len) / (self.compute - self.first_compute)
        return self.generated / self.compute if self.compute > 0 else 0.0


class _Sink:
    """The audio callback's state. Everything is allocated before the stream starts."""

    def __init__(self, queue: SampleQueue, n_samples: int, producer: _Producer,
                 record: np.ndarray | None, trace: np.ndarray | None):
        self.queue = queue
        self.n = n_samples
        self.producer = producer
        self.record = record
        self.trace = trace
        self.underruns = 0
        self.underrun_samples = 0
        self.device_underflows = 0
        self.callbacks = 0
        self.t_end: float | None = None

    def callback(self, outdata, frames, time_info, status) -> None:
        self.callbacks += 1
        if status.output_underflow:
            self.device_underflows += 1
        out = outdata[:, 0]
        r0 = self.queue.read
        n = self.queue.read_into(out)
        if self.record is not None and n:
            self.record[r0:r0 + n] = out[:n]
        if n < frames:
            out[n:] = 0.0
            if self.queue.read < self.n and not (self.producer.done
                                                 and self.queue.available == 0):
                self.underruns += 1
                self.underrun_samples += frames - n
        now = time.perf_counter()
        if self.t_end is None and (self.queue.read >= self.n or (
                self.producer.done and self.queue.available == 0)):
            self.t_end = now
        if self.trace is not None and self.callbacks <= len(self.trace):
            row = self.trace[self.callbacks - 1]
            row[0], row[1], row[2] = now, self.queue.read, self.underrun_samples


def play_chunks(chunks: Iterable[np.ndarray], n_samples: int, sample_rate: int, *,
                device=None, latency: str | float = "high", blocksize: int = 0,
                preroll: int | str = "auto", headroom: float = DEFAULT_HEADROOM,
                queue_seconds: float = 30.0, record: np.ndarray | None = None,
                trace: np.ndarray | None = None, poll: float = 0.005) -> PlaybackReport:
    """Play ``chunks`` (an iterable of float32 arrays, ``n_samples`` in all) live.

    preroll: "auto" (from the measured generation rate, see :func:`preroll_samples`, and
    at least :data:`DEVICE_FILL` times the device's latency) or a fixed number of
    samples. queue_seconds bounds the ring (and so the pre-roll).
    record: a preallocated (n_samples,) float32 array that receives every sample the
    callback takes from the queue, in order (for tests and for ``--out``).
    trace: a preallocated (K, 3) float64 array; row i receives, at callback i (up to K),
    (perf_counter seconds, samples taken from the queue so far, underrun samples so far).
    """
    if n_samples < 1:
        raise VocoderError(f"nothing to play: n_samples={n_samples}")
    if record is not None and (record.shape != (n_samples,) or record.dtype != np.float32):
        raise VocoderError(f"record must be float32 ({n_samples},), got {record.dtype} "
                           f"{record.shape}")
    if preroll != "auto" and (isinstance(preroll, str) or preroll < 0):
        raise VocoderError(f"preroll must be 'auto' or a number of samples >= 0, "
                           f"got {preroll!r}")
    sd = _sounddevice()
    info = check_output_device(device)
    capacity = int(min(n_samples, max(1, queue_seconds * sample_rate)))
    queue = SampleQueue(capacity)
    producer = _Producer(chunks, queue, n_samples)
    if trace is not None and (trace.ndim != 2 or trace.shape[1] != 3
                              or trace.dtype != np.float64):
        raise VocoderError(f"trace must be float64 (K, 3), got {trace.dtype} {trace.shape}")
    sink = _Sink(queue, n_samples, producer, record, trace)
    try:
        stream = sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32",
                                 device=device, latency=latency, blocksize=blocksize,
                                 callback=sink.callback)
    except Exception as e:  # PortAudioError, ValueError for a bad device or setting
        raise VocoderError(f"cannot open an output stream on {info['name']!r} at "
                           f"{sample_rate} Hz: {e}") from None

    t_call = time.perf_counter()
    producer.start()
    try:
        # Pre-roll: wait until the buffered audio covers what generation will lag behind,
        # and the device's first fill.
        fill = math.ceil(DEVICE_FILL * float(stream.latency) * sample_rate)
        target = 0
        while True:
            if producer.error is not None:
                raise producer.error
            buffered = queue.available
            if producer.done:
                target = min(target, buffered) if preroll == "auto" else buffered
                break
            if producer.chunks_made:
                target = (max(preroll_samples(n_samples, producer.rate(), sample_rate,
                                              headroom), fill)
                          if preroll == "auto" else int(preroll))
                target = min(max(target, 1), capacity)
                if buffered >= target:
                    break
            time.sleep(poll)
        t_start = time.perf_counter()
        try:
            stream.start()
        except Exception as e:  # PortAudioError
            raise VocoderError(f"cannot start playback on {info['name']!r}: {e}") from None
        while sink.t_end is None:
            if producer.error is not None:
                raise producer.error
            time.sleep(poll)
        # Let the device play out what it holds before stopping.
        latency_s = float(stream.latency)
        time.sleep(latency_s)
    finally:
        producer.stop.set()
        stream.close()  # stops the stream first if it is running
        producer.join(timeout=5.0)
    if producer.error is not None:
        raise producer.error
    gen_s = producer.compute
    played = min(queue.read, n_samples)
    return PlaybackReport(
        samples=played, sample_rate=sample_rate, audio_seconds=played / sample_rate,
        generation_seconds=gen_s, generation_rate=producer.generated / gen_s if gen_s else
        float("inf"), real_time_factor=gen_s / (producer.generated / sample_rate)
        if producer.generated else float("nan"),
        preroll_samples=int(target), preroll_seconds=target / sample_rate,
        wait_seconds=t_start - t_call, playback_seconds=sink.t_end - t_start,
        underruns=sink.underruns, underrun_samples=sink.underrun_samples,
        device_underflows=sink.device_underflows, callbacks=sink.callbacks,
        device=str(info["name"]), latency_seconds=latency_s)


def play(vocoder, features=None, *, speaker: int | None = None, seed: int = 0,
         temperature: float | None = None, gc=None, n_samples: int | None = None,
         chunk: int | None = None, voiced_temperature: float | None = None, device=None,
         latency: str | float = "high", headroom: float = DEFAULT_HEADROOM,
         out: str | Path | None = None, normalize: bool = True,
         trace: np.ndarray | None = None, layout: str | None = None,
         mel_config=None, postfilter: int | None = None) -> PlaybackReport:
    """Generate with ``vocoder.stream`` and play live. ``out``: also write the played
    audio to this wav file (atomically, after playback). chunk: samples per generated
    chunk (default: the backend's, 50 ms on the CPU). trace: see :func:`play_chunks`.
    ``layout``, ``mel_config``, ``postfilter``: for mels, as
    :meth:`vocoder.api.Vocoder.stream`."""
    sr = vocoder.sample_rate
    chunk = chunk or vocoder.backend.stream_chunk()
    n = _stream_length(vocoder, features, n_samples, layout, mel_config)
    gen = vocoder.stream(features, speaker=speaker, seed=seed, temperature=temperature, gc=gc,
                         n_samples=n_samples, chunk=chunk, normalize=normalize,
                         voiced_temperature=voiced_temperature, layout=layout,
                         postfilter=postfilter)
    record = np.zeros(n, np.float32) if out is not None else None
    rep = play_chunks(gen, n, sr, device=device, latency=latency, headroom=headroom,
                      record=record, trace=trace)
    if out is not None:
        from vocoder.fileio import write_wav_atomic

        write_wav_atomic(out, record[:rep.samples], sr)
        rep = PlaybackReport(**{**rep.to_dict(), "output": str(out)})
    return rep


def render(vocoder, features=None, *, out: str | Path, speaker: int | None = None,
           seed: int = 0, temperature: float | None = None, gc=None,
           n_samples: int | None = None, chunk: int | None = None, normalize: bool = True,
           voiced_temperature: float | None = None, layout: str | None = None,
           mel_config=None, postfilter: int | None = None) -> tuple[int, float]:
    """What :func:`play` would play, written to ``out`` instead (no audio device needed).
    Returns (samples, generation seconds)."""
    from vocoder.fileio import write_wav_atomic

    sr = vocoder.sample_rate
    t0 = time.perf_counter()
    parts = list(vocoder.stream(features, speaker=speaker, seed=seed,
                                temperature=temperature, gc=gc, n_samples=n_samples,
                                chunk=chunk, normalize=normalize,
                                voiced_temperature=voiced_temperature, layout=layout,
                                mel_config=mel_config, postfilter=postfilter))
    dt = time.perf_counter() - t0
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    write_wav_atomic(out, audio, sr)
    return len(audio), dt


def _stream_length(vocoder, features, n_samples, layout=None, mel_config=None) -> int:
    from vocoder.inputs import check_n_samples

    frames = vocoder.prepare(features, layout=layout, mel_config=mel_config)
    return check_n_samples(n_samples, frames, vocoder.config)
