"""A microphone like people plug in: one that only does 48 (or 44.1) kHz, and one that stalls.

The device is real ALSA (tests/rig/alsa_fixed_rate.c, an ioplug PCM that refuses every rate but
its own) under the real sounddevice -> PortAudio path, inside the driver's capture process.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from safehouse.drivers.microphone import Clip, MicrophoneError, SoundDeviceMicrophone
from safehouse.drivers.resample import Resampler
from tests.rig import audio as audio_rig
from tests.rig.availability import unavailable
from tests.rig.wait import wait_for

RATE = 16000
HZ = 440.0


pytestmark = pytest.mark.usefixtures("portaudio")  # sounddevice under the rig's microphone


def samples_of(clip: Clip) -> np.ndarray[Any, np.dtype[np.float64]]:
    return audio_rig.clip_samples(clip).astype(np.float64)


def sine_fit(x: np.ndarray[Any, np.dtype[np.float64]], hz: float, rate: int) -> tuple[float, float]:
    """Amplitude of the best ``hz`` sine through ``x``, and the rms of what it leaves over.

    A dropped or repeated chunk shifts the phase for the rest of the clip, which leaves a
    residual as loud as the tone: a small residual means every sample arrived in order.
    """
    t = np.arange(len(x)) / rate
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x, rcond=None)
    residual = x - basis @ coef
    return float(np.hypot(*coef)), float(np.sqrt(np.mean(residual**2)))


def peak_hz(x: np.ndarray[Any, np.dtype[np.float64]], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


# --- the resampler alone ------------------------------------------------------------------

@pytest.mark.parametrize("source", [48000, 44100])
def test_resampling_keeps_a_tone_in_pitch_and_level_across_any_blocks(source: int) -> None:
    x = audio_rig.tone(2.0, HZ, source)
    whole = Resampler(source, RATE).process(x)
    r, pieces, pos, rng = Resampler(source, RATE), [], 0, np.random.default_rng(source)
    while pos < len(x):
        n = int(rng.integers(1, 5000))
        pieces.append(r.process(x[pos : pos + n]))
        pos += n
    blocks = np.concatenate(pieces)
    np.testing.assert_array_equal(blocks, whole)  # block boundaries change nothing
    assert abs(len(whole) - 2 * RATE) <= 1
    y = whole[1000:].astype(np.float64)  # past the filter's start-up
    amplitude, residual = sine_fit(y, HZ, RATE)
    assert abs(amplitude / (0.5 * 32767) - 1) < 0.005
    assert residual < 0.002 * amplitude
    assert abs(peak_hz(y, RATE) - HZ) < RATE / len(y)


@pytest.mark.parametrize("source", [48000, 44100])
def test_resampling_stops_what_would_fold_back_below_8_khz(source: int) -> None:
    # 10 kHz cannot exist at 16 kHz; without the filter it would come back as a 6 kHz tone
    y = Resampler(source, RATE).process(audio_rig.tone(1.0, 10_000, source))[1000:].astype(np.float64)
    assert np.sqrt(np.mean(y**2)) < 0.5 * 32767 / np.sqrt(2) * 10 ** (-60 / 20)


def test_resampling_at_the_same_rate_passes_samples_through() -> None:
    x = audio_rig.noise(0.5)
    np.testing.assert_array_equal(Resampler(RATE, RATE).process(x), x)


# --- a 48 kHz-only device through the real path -------------------------------------------

def test_a_48k_only_device_refuses_16k_as_the_old_driver_opened_it(tmp_path: Path) -> None:
    """The fixture is honest: the open the old driver made fails the way the field saw it."""
    raw = tmp_path / "tone48.raw"
    audio_rig.tone(5, HZ, 48000).astype("<i2").tofile(raw)
    script = """
import sounddevice
try:
    sounddevice.InputStream(samplerate=16000, channels=1, dtype="int16", device="usbmic",
                            blocksize=1600).start()
except Exception as exc:
    print("refused:", exc)
else:
    print("opened")
print(sounddevice.query_devices("usbmic")["default_samplerate"])
"""
    with audio_rig.usb_mic(raw):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60, check=True, env=dict(os.environ))
    assert "refused: Error opening InputStream: Invalid sample rate" in out.stdout
    assert out.stdout.strip().endswith("48000.0")


@pytest.mark.parametrize("native", [48000, 44100])
def test_the_microphone_opens_it_at_its_own_rate_and_hears_440_hz_at_16k(
        tmp_path: Path, native: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="safehouse.drivers.microphone")
    raw = tmp_path / "tone.raw"
    audio_rig.tone(30, HZ, native).astype("<i2").tofile(raw)
    with audio_rig.usb_mic(raw, rate=native) as name, \
            SoundDeviceMicrophone(pre_roll=0.5, device=name) as mic:
        assert mic.fault is None and mic.is_capturing
        time.sleep(0.6)
        clip = mic.record(1.0)
        info = mic.describe()
    assert (mic.device_name, mic.native_rate, mic.device_rate, mic.rate) == (name, native, native, RATE)
    assert info == {"device": name, "native_rate": native, "device_rate": native, "rate": RATE,
                    "stalls": 0, "overflows": 0, "capturing": True, "fault": None}
    got = samples_of(clip)
    assert clip.rate == RATE and len(got) >= 1.4 * RATE
    amplitude, residual = sine_fit(got[200:], HZ, RATE)  # 200: the resampler's start-up
    assert abs(amplitude / (0.5 * 32767) - 1) < 0.01
    assert residual < 0.01 * amplitude  # no chunk lost or repeated across ~15 blocks
    assert abs(peak_hz(got, RATE) - HZ) < RATE / len(got)
    assert f"opened at {native} Hz, resampled to 16000 Hz" in caplog.text


def test_the_device_given_by_its_index_as_the_config_holds_it_opens_too(tmp_path: Path) -> None:
    """`python3 -m sounddevice` lists inputs by number: microphone.device = "2" (TOML string)."""
    raw = tmp_path / "tone.raw"
    audio_rig.tone(30, HZ, 32000).astype("<i2").tofile(raw)
    with audio_rig.usb_mic(raw, rate=32000) as name:
        listing = subprocess.run([sys.executable, "-m", "sounddevice"], capture_output=True, text=True,
                                 timeout=30, check=True).stdout
        index = next(line.split()[0].lstrip(">*") for line in listing.splitlines()
                     if line[2:].split()[1:2] == [f"{name},"])
        with SoundDeviceMicrophone(pre_roll=0.5, device=index) as mic:
            assert mic.fault is None and mic.is_capturing, mic.fault
            clip = mic.record(0.5)
    assert (mic.device_name, mic.native_rate, mic.device_rate) == (name, 32000, 32000)
    amplitude, residual = sine_fit(samples_of(clip)[200:], HZ, RATE)
    assert residual < 0.01 * amplitude


def test_an_overrun_is_counted_and_the_capture_goes_on(tmp_path: Path) -> None:
    """`safehouse accept` wants 60 s with zero overflows: the count must be PortAudio's."""
    raw = tmp_path / "tone.raw"
    audio_rig.tone(30, HZ, 48000).astype("<i2").tofile(raw)
    with audio_rig.usb_mic(raw, xrun_after=48000) as name, \
            SoundDeviceMicrophone(pre_roll=0.5, device=name) as mic:
        assert mic.overflows == 0
        assert wait_for(lambda: mic.overflows == 1, 5.0)
        clip = mic.record(0.5)
        assert mic.overflows == 1 and mic.fault is None and mic.stalls == 0
    assert clip.frames >= RATE


def test_selftest_names_the_usb_microphone_and_its_rates(short_dir: Path) -> None:
    """What the technician reads from `safehouse selftest --json` on a kiosk with such a mic."""
    extra = '[camera]\nenabled = false\n[microphone]\npre_roll = 1.0\ndevice = "usbmic"\n'
    proc = audio_rig.usb_mic_daemon(short_dir, extra, hz=HZ)
    try:
        checks = {c["name"]: c for c in json.loads(proc.ok("selftest", "--json"))["checks"]}
    finally:
        proc.kill()
    mic = checks["microphone"]
    assert mic["ok"] is True, mic
    assert mic["detail"].startswith("'usbmic' (native 48000 Hz, opened at 48000 Hz, resampled to 16000 Hz): ")
    assert "loudest 440 Hz" in mic["detail"]


def test_capture_works_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """The unit's MemoryDenyWriteExecute=yes, as the kernel's PR_SET_MDWE: our capture still
    works (blocking reads, no cffi callback) where a callback stream cannot even be made."""
    raw = tmp_path / "tone.raw"
    audio_rig.tone(10, HZ, 48000).astype("<i2").tofile(raw)
    script = """
import ctypes, json, subprocess, sys, time
if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, REFUSE_EXEC_GAIN
    print(json.dumps({"mdwe": False})); sys.exit()
get_mdwe = "import ctypes; print(ctypes.CDLL(None).prctl(66, 0, 0, 0, 0))"  # PR_GET_MDWE
inherited = subprocess.run([sys.executable, "-c", get_mdwe], capture_output=True, text=True).stdout.strip()
from safehouse.drivers.microphone import SoundDeviceMicrophone
with SoundDeviceMicrophone(pre_roll=0.5, device="usbmic") as mic:
    time.sleep(0.6)
    frames = mic.record(0.3).frames
import sounddevice
try:
    sounddevice.InputStream(samplerate=48000, channels=1, dtype="int16", device="usbmic",
                            callback=lambda *a: None)
    callback = "opened"
except MemoryError as exc:
    callback = str(exc)
print(json.dumps({"mdwe": True, "inherited": inherited, "frames": frames, "callback": callback}))
"""
    with audio_rig.usb_mic(raw):
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60, check=True, env=dict(os.environ))
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if not result["mdwe"]:
        unavailable("this kernel has no PR_SET_MDWE (Linux >= 6.3)")
    assert result["inherited"] == "1"  # the capture process runs under it too
    assert result["frames"] >= 0.7 * RATE
    assert "Cannot allocate write+execute memory" in result["callback"]


def test_the_simulated_16k_microphone_is_not_resampled() -> None:
    audio_rig.feed(audio_rig.noise(5, seed=21))
    with SoundDeviceMicrophone(pre_roll=0) as mic:
        mic.record(0.1)
        assert mic.device_rate == RATE and mic.device_name == "default"


# --- a device that stops delivering -------------------------------------------------------

def test_a_stalled_device_is_noticed_restarted_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="safehouse.drivers.microphone")
    feed = audio_rig.FifoFeed(tmp_path / "mic.fifo", audio_rig.tone(1.0, HZ, 48000))
    try:
        with audio_rig.usb_mic(feed.path) as name, \
                SoundDeviceMicrophone(pre_roll=0.5, device=name, stall_after=1.0) as mic:
            assert mic.is_capturing and mic.fault is None
            time.sleep(0.6)
            assert mic.record(0.2).frames > 0
            feed.flowing.clear()  # the device's reads now block inside libasound
            paused = time.monotonic()
            assert wait_for(lambda: mic.fault is not None, 10.0)
            noticed = time.monotonic() - paused
            assert mic.stalls == 1 and "no audio for 1.0 s" in (mic.fault or "")
            assert "PortAudio re-initialised" in (mic.fault or "")
            assert mic.is_running  # the reader thread itself never blocked
            feed.flowing.set()  # plugged back in
            assert wait_for(lambda: mic.fault is None, 10.0)
            clip = mic.record(1.0)
            assert mic.stalls == 1
            begun = time.monotonic()
        assert time.monotonic() - begun < 1.0  # close() is prompt
    finally:
        feed.close()
    # up to ~1.4 s of audio sat in the pipes when the feed stopped, then 1 s without any
    assert 1.0 <= noticed < 6.0
    amplitude, residual = sine_fit(samples_of(clip)[-RATE // 2 :], HZ, RATE)
    assert abs(amplitude / (0.5 * 32767) - 1) < 0.01 and residual < 0.01 * amplitude
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "no audio" in r.getMessage()]
    assert len(warnings) == 1  # lost: said once
    assert "works again" in caplog.text  # restored


def test_a_microphone_pulled_mid_stream_is_noticed_and_works_again_once_plugged_back(
        tmp_path: Path) -> None:
    """A USB card pulled while streaming: its PCM fails with ENODEV (the plugin does that while
    its infile is gone). PortAudio 19.6 then waits for frames that never come (PortAudio #1037
    spins, here it blocks): the stall detector must end that capture process, report the
    loss, keep retrying while the device is absent, and hear it again once it is back."""
    raw = tmp_path / "tone.raw"
    audio_rig.tone(60, HZ, 48000).astype("<i2").tofile(raw)
    with audio_rig.usb_mic(raw) as name, SoundDeviceMicrophone(pre_roll=0.5, device=name) as mic:
        assert wait_for(lambda: mic.is_capturing and mic.capture_pid is not None, 10.0), mic.fault
        first = mic.capture_pid
        assert first is not None
        raw.rename(tmp_path / "pulled.raw")  # the cable comes out
        assert wait_for(lambda: mic.fault is not None, 10.0)
        assert mic.stalls == 1 and "no audio for 5.0 s" in str(mic.fault), mic.fault
        assert wait_for(lambda: not Path(f"/proc/{first}").exists(), 5.0)  # no process left spinning
        assert wait_for(lambda: "No input device matching 'usbmic'" in str(mic.fault), 10.0), mic.fault
        (tmp_path / "pulled.raw").rename(raw)  # and back in
        assert wait_for(lambda: mic.fault is None and mic.is_capturing, 35.0), mic.fault
        clip = mic.record(0.5)
    assert clip.frames >= 0.5 * RATE and mic.stalls == 1
    amplitude, residual = sine_fit(samples_of(clip)[-RATE // 2:], HZ, RATE)
    assert residual < 0.01 * amplitude


def test_a_clip_asked_for_during_a_stall_ends_with_the_stall_named(tmp_path: Path) -> None:
    """An alarm while the device is silently stuck, longer than the pre-roll: the clip waits,
    then fails naming the stall (it used to raise IndexError from the ring at once)."""
    feed = audio_rig.FifoFeed(tmp_path / "mic.fifo", audio_rig.tone(1.0, HZ, 48000))
    try:
        with audio_rig.usb_mic(feed.path) as name, \
                SoundDeviceMicrophone(pre_roll=0.3, device=name, stall_after=3.0) as mic:
            time.sleep(0.5)
            feed.flowing.clear()
            time.sleep(2.5)  # the pipes' ~1.4 s of audio are gone: "now" is past the newest sample
            assert mic.fault is None and mic.stalls == 0  # not noticed yet
            with pytest.raises(MicrophoneError, match=r"no audio for 3\.0 s"):
                mic.record(1.0)
            assert mic.stalls == 1
            begun = time.monotonic()  # the retry's capture process is stuck in its read now
        assert time.monotonic() - begun < 1.0  # close() kills it rather than wait
    finally:
        feed.close()

