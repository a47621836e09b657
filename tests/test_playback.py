"""Live playback against a real, clocked audio sink: PulseAudio's module-null-sink,
reached by PortAudio through ALSA's ``pulse`` device.

The fixture starts PulseAudio when none is running (and stops it afterwards), loads a
null sink and routes our streams to it with PULSE_SINK; it skips, saying why, when the
stack is not installed (apt-get install pulseaudio libasound2-plugins libportaudio2;
pip install sounddevice).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from tests.conftest import make_bundle, make_config, random_features
from vocoder import playback
from vocoder.errors import VocoderError

SR = 16000
SINK = "vocoder_test_null"


# -- no audio needed ----------------------------------------------------------------------
def test_preroll_is_zero_when_faster_than_real_time():
    assert playback.preroll_samples(16000, 20000, SR) == 0
    assert playback.preroll_samples(16000, 1.2 * SR, SR, headroom=1.1) == 0
    assert playback.preroll_samples(16000, 0.99 * SR, SR, headroom=1.0) > 0


@pytest.mark.parametrize("ratio", [0.25, 0.5, 0.9])
def test_preroll_covers_the_lag(ratio):
    n = 32000
    p = playback.preroll_samples(n, ratio * SR, SR, headroom=1.0)
    assert p == pytest.approx(n * (1 - ratio), abs=1)
    # Sample k is made at (k - p) / rate after the start and played at k / SR.
    k = np.arange(p, n)
    assert np.all((k - p) / (ratio * SR) <= k / SR + 1e-9)


def test_sample_queue_keeps_order_across_wraps():
    q = playback.SampleQueue(7)
    data = np.arange(1000, dtype=np.float32)
    got = np.zeros(1000, np.float32)

    def produce():
        for i in range(0, 1000, 13):
            q.write(data[i:i + 13])

    t = threading.Thread(target=produce)
    t.start()
    pos, out = 0, np.zeros(5, np.float32)
    deadline = time.time() + 10
    while pos < 1000 and time.time() < deadline:
        n = q.read_into(out)
        got[pos:pos + n] = out[:n]
        pos += n
    t.join()
    np.testing.assert_array_equal(got, data)


def test_without_portaudio_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import raises ImportError
    with pytest.raises(VocoderError, match="sounddevice"):
        playback.list_output_devices()


def test_without_a_device_a_clear_error(monkeypatch):
    try:
        import sounddevice  # noqa: F401
    except (ImportError, OSError) as e:
        pytest.skip(f"sounddevice/PortAudio unavailable: {e}")
    monkeypatch.setattr(playback, "list_output_devices", lambda: [])
    with pytest.raises(VocoderError, match="no audio output device"):
        playback.play_chunks([np.zeros(10, np.float32)], 10, SR)


@pytest.fixture
def tiny_bundle(tmp_path):
    cfg = make_config(cond_channels=5)
    make_bundle(tmp_path / "b", cfg)
    feats = random_features(cfg, 400, seed=1)  # 2,400 samples
    np.save(tmp_path / "f.npy", feats)
    return tmp_path / "b", tmp_path / "f.npy", feats


def test_cli_writes_the_wav_without_audio(tiny_bundle, tmp_path, monkeypatch, capsys):
    import soundfile as sf

    from vocoder.api import Vocoder
    from vocoder.cli import main

    bundle, fpath, feats = tiny_bundle
    monkeypatch.setitem(sys.modules, "sounddevice", None)
    assert main(["play", str(bundle), str(fpath)]) == 2
    assert "sounddevice" in capsys.readouterr().err
    wav = tmp_path / "out.wav"
    assert main(["play", str(bundle), str(fpath), "--out", str(wav)]) == 0
    audio, sr = sf.read(wav, dtype="float32")
    with Vocoder.load(bundle) as voc:
        ref = voc.synthesize(feats, fold=False)
    assert sr == SR and len(audio) == len(ref)
    assert np.abs(audio - np.clip(ref, -1, 1)).max() <= 1.5 / 32768


# -- the real thing: PulseAudio's null sink ----------------------------------------------
def _run(*cmd, check=False, timeout=15):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=check)


def _pulse_running() -> bool:
    return shutil.which("pactl") is not None and _run("pactl", "info").returncode == 0


@pytest.fixture(scope="module")
def null_sink():
    """The ALSA ``pulse`` device name, with our null sink as the target of new streams."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:
        pytest.skip(f"sounddevice/PortAudio unavailable ({e}): apt-get install "
                    "libportaudio2 && pip install sounddevice")
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        pytest.skip("PulseAudio is not installed: apt-get install pulseaudio "
                    "libasound2-plugins")
    started = False
    if not _pulse_running():
        # As root PulseAudio warns but runs in per-user mode; --exit-idle-time=-1 keeps it
        # up between tests.
        r = _run("pulseaudio", "--start", "--exit-idle-time=-1")
        started = _pulse_running()
        if not started:
            pytest.skip(f"cannot start PulseAudio: {r.stderr.strip() or r.stdout.strip()}")
    module = None
    sinks = _run("pactl", "list", "short", "sinks").stdout
    if SINK not in sinks:
        r = _run("pactl", "load-module", "module-null-sink", f"sink_name={SINK}")
        if r.returncode != 0:
            pytest.skip(f"cannot load module-null-sink: {r.stderr.strip()}")
        module = r.stdout.strip()
    if started:
        _run("pactl", "set-default-sink", SINK)
    # A null sink that had no client sleeps in 2 s blocks: the first stream would wait up
    # to 2 s for audio to move. A low-latency silent client keeps its clock fine-grained.
    keepalive = None
    if shutil.which("pacat"):
        keepalive = subprocess.Popen(
            ["pacat", "--raw", "--format=s16le", "--rate=8000", "--channels=1",
             "--latency-msec=10", f"--device={SINK}", "/dev/zero"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.3)
    old_sink = os.environ.get("PULSE_SINK")
    os.environ["PULSE_SINK"] = SINK  # libpulse (inside ALSA's pulse plugin) reads it
    # Re-scan: PortAudio lists devices once, when it is initialised.
    sd._terminate()
    sd._initialize()
    try:
        names = [d["name"] for d in sd.query_devices() if d["max_output_channels"] > 0]
        if "pulse" not in names:
            pytest.skip(f"PortAudio has no ALSA 'pulse' device (devices: {names}); "
                        "apt-get install libasound2-plugins")
        yield "pulse"
    finally:
        if old_sink is None:
            os.environ.pop("PULSE_SINK", None)
        else:
            os.environ["PULSE_SINK"] = old_sink
        if keepalive is not None:
            keepalive.terminate()
            keepalive.wait(5)
        if module:
            _run("pactl", "unload-module", module)
        if started:
            _run("pulseaudio", "--kill")


def _chunks(audio, size, delay=0.0, stall_at=None, stall=0.0):
    """A producer: ``size``-sample chunks, ``delay`` s each, one ``stall`` s pause."""
    for k, i in enumerate(range(0, len(audio), size)):
        if delay:
            time.sleep(delay)
        if k == stall_at:
            time.sleep(stall)
        yield audio[i:i + size]


def _noise(seconds, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * SR)).astype(
        np.float32)


def _trace():
    return np.zeros((5000, 3), np.float64)


def _assert_duration(rep, trace, slack=0.3):
    """Playback keeps the device's clock: once audio flows, samples plus the silence
    inserted by underruns leave at the sample rate. A null sink may take a moment to
    start moving (up to its 2 s idle block), so the wall time is bounded loosely."""
    rows = trace[: min(rep.callbacks, len(trace))]
    done = rows[:, 1] + rows[:, 2]
    n = rep.samples + rep.underrun_samples
    a = int(np.argmax(done >= 0.3 * n))
    b = int(np.argmax(done >= n - 1))
    rate = (done[b] - done[a]) / (rows[b, 0] - rows[a, 0])
    assert rate == pytest.approx(SR, rel=0.1), (rate, rep)
    assert n / SR - 0.1 <= rep.playback_seconds <= n / SR + 2.0 + slack, rep
    # What the trace saw is what the report says.
    assert rows[-1, 2] == rep.underrun_samples
    assert int(np.count_nonzero(np.diff(rows[:, 2]))) + (rows[0, 2] > 0) == rep.underruns


def test_every_sample_is_played_once_in_order(null_sink):
    audio = _noise(1.0)
    record = np.full(len(audio), np.nan, np.float32)
    trace = _trace()
    rep = playback.play_chunks(_chunks(audio, 400), len(audio), SR, device=null_sink,
                               record=record, trace=trace)
    np.testing.assert_array_equal(record, audio)
    assert rep.samples == len(audio) and rep.callbacks > 0
    assert rep.preroll_samples == 0  # a generator this fast needs no pre-roll
    assert rep.underruns == 0 and rep.underrun_samples == 0
    _assert_duration(rep, trace)


def test_a_stalled_producer_underruns_and_it_is_counted(null_sink):
    audio = _noise(1.0, seed=1)
    record = np.zeros(len(audio), np.float32)
    trace = _trace()
    # Start at once, buffer at most 0.1 s, then stall 0.5 s: about 0.4 s of silence.
    rep = playback.play_chunks(_chunks(audio, 400, stall_at=10, stall=0.5), len(audio), SR,
                               device=null_sink, preroll=0, queue_seconds=0.1,
                               record=record, trace=trace)
    np.testing.assert_array_equal(record, audio)  # late, but every sample, in order
    assert rep.underruns >= 1
    assert 0.25 * SR <= rep.underrun_samples <= 0.55 * SR, rep
    _assert_duration(rep, trace)


def test_a_slow_producer_gets_a_preroll_instead_of_underruns(null_sink):
    audio = _noise(0.8, seed=2)
    size, speed = 400, 0.6  # 60 % of real time, steady
    trace = _trace()
    rep = playback.play_chunks(_chunks(audio, size, delay=size / (speed * SR)), len(audio),
                               SR, device=null_sink, trace=trace)
    n = len(audio)
    assert 0.3 * n <= rep.preroll_samples <= 0.75 * n, rep
    assert rep.real_time_factor == pytest.approx(1 / speed, rel=0.3)
    assert rep.underruns == 0, rep
    _assert_duration(rep, trace)


def test_a_fast_producer_prerolls_the_devices_first_fill(null_sink):
    # Faster than real time, but its first chunk is one sample: started at once, the
    # device's first fill (faster than real time) would find the queue empty.
    audio = _noise(1.0, seed=3)
    size, speed = 100, 3.0

    def chunks():
        yield audio[:1]
        yield from _chunks(audio[1:], size, delay=size / (speed * SR))

    trace = _trace()
    rep = playback.play_chunks(chunks(), len(audio), SR, device=null_sink, trace=trace)
    assert rep.preroll_samples >= playback.DEVICE_FILL * rep.latency_seconds * SR, rep
    assert rep.underruns == 0, rep
    _assert_duration(rep, trace)


def test_play_a_bundle(null_sink, tiny_bundle, tmp_path):
    import soundfile as sf

    from vocoder.api import Vocoder

    bundle, _, feats = tiny_bundle
    wav = tmp_path / "played.wav"
    with Vocoder.load(bundle) as voc:
        ref = voc.synthesize(feats, seed=3, fold=False)
        trace = _trace()
        rep = playback.play(voc, feats, seed=3, device=null_sink, out=wav, trace=trace)
    assert rep.samples == len(ref) and rep.output == str(wav)
    played, _ = sf.read(wav, dtype="float32")
    assert np.abs(played - np.clip(ref, -1, 1)).max() <= 1.5 / 32768
    _assert_duration(rep, trace)


def test_cli_lists_devices_and_plays(null_sink, tiny_bundle, capsys):
    from vocoder.cli import main

    assert main(["play", "--list-devices"]) == 0
    assert "pulse" in capsys.readouterr().out
    bundle, fpath, _ = tiny_bundle
    assert main(["play", str(bundle), str(fpath), "--device", null_sink]) == 0
    out = capsys.readouterr().out
    assert "underruns" in out and "pre-roll" in out
    from vocoder.runtime.registry import probe

    # --backend auto: the compiled loop where it works (one live stream in real time)
    assert out.rstrip().endswith("on native" if probe("native")[0] else "on onnxruntime")
