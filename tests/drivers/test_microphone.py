"""The microphone through the real sounddevice -> PortAudio -> ALSA path, no mocks.

The "sound card" is ALSA's file plugin reading samples a test chose (tests/rig/audio.py), so
a clip can be checked sample for sample against its source.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.microphone import MicrophoneError, SoundDeviceMicrophone
from safehouse.drivers.ring_buffer import SampleRing
from safehouse.drivers.sim_audio import chirp_signal, prepare_sim_audio
from tests.rig import audio as audio_rig
from tests.rig.wait import wait_for

RATE = 16000
BLOCK = 1600


pytestmark = pytest.mark.usefixtures("portaudio")  # sounddevice under the rig's microphone


samples_of = audio_rig.clip_samples



@pytest.mark.parametrize("capacity", [0, 1, 7, 1600])
def test_the_ring_gives_back_any_held_stretch_of_the_stream(capacity: int) -> None:
    stream = audio_rig.noise(1, seed=capacity)
    rng, ring, pos = np.random.default_rng(capacity), SampleRing(capacity), 0
    while pos < len(stream):
        n = int(rng.integers(0, 2 * capacity + 3))  # blocks shorter and longer than the ring
        ring.write(stream[pos : pos + n])
        pos = min(pos + n, len(stream))
        assert (ring.start, ring.end) == (max(0, pos - capacity), pos)
        a = int(rng.integers(ring.start, ring.end + 1))
        b = int(rng.integers(a, ring.end + 1))
        np.testing.assert_array_equal(ring.read(a, b), stream[a:b])
    assert ring.nbytes == capacity * 2


def test_clips_are_sample_exact_and_hold_the_pre_roll() -> None:
    source = audio_rig.noise(60)
    audio_rig.feed(source)
    with SoundDeviceMicrophone(pre_roll=2.0) as mic:
        assert mic.is_capturing and mic.fault is None
        assert mic.buffer_bytes == (2 * RATE + BLOCK) * 2
        time.sleep(3.0)
        at = time.monotonic()
        # two alarms close together, each recorded on its own worker thread
        with ThreadPoolExecutor(2) as pool:
            futures = [pool.submit(mic.record, 1.0, at=t) for t in (at, at + 0.3)]
            clips = [f.result(timeout=10) for f in futures]
        done = time.monotonic()
        started = mic.started_at
    assert started is not None
    assert done >= at + 1.3 - BLOCK / RATE  # record() waited for the post-roll
    for clip, t in zip(clips, (at, at + 0.3), strict=True):
        got = samples_of(clip)
        assert clip.frames == len(got) == clip.pre_roll_frames + RATE
        assert abs(clip.pre_roll_frames - 2 * RATE) <= BLOCK
        first = clip.first_frame_index
        np.testing.assert_array_equal(got, source[first : first + clip.frames])
        # paced like a real microphone: sample n was captured at started + n / RATE
        assert abs(first - ((t - started) * RATE - 2 * RATE)) <= 2 * BLOCK


def test_without_pre_roll_the_stream_opens_only_for_a_clip() -> None:
    source = audio_rig.noise(5, seed=8)
    audio_rig.feed(source)
    with SoundDeviceMicrophone(pre_roll=0) as mic:
        time.sleep(0.3)
        assert mic.is_running and not mic.is_capturing and mic.buffer_bytes == 0
        begun = time.monotonic()
        clip = mic.record(0.5)
        assert time.monotonic() - begun >= 0.5 - BLOCK / RATE
        assert (clip.pre_roll_frames, clip.frames, clip.first_frame_index) == (0, RATE // 2, 0)
        np.testing.assert_array_equal(samples_of(clip), source[: RATE // 2])
        assert wait_for(lambda: not mic.is_capturing, 1.0)
        # closed in between: the next clip reopens the device (the file plugin starts over)
        np.testing.assert_array_equal(samples_of(mic.record(0.2)), source[: RATE // 5])


def test_a_missing_device_is_a_fault_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="safehouse.drivers.microphone")
    with SoundDeviceMicrophone(pre_roll=1.0, device="no-such-mic") as mic:
        assert mic.is_running and not mic.is_capturing
        assert mic.fault is not None and "no-such-mic" in mic.fault
        with pytest.raises(MicrophoneError, match="no-such-mic") as err:
            mic.record(0.5)
        assert isinstance(err.value, HardwareError) and isinstance(err.value, OSError)
        assert mic.is_running  # still retrying in the background
    assert len([r for r in caplog.records if "no-such-mic" in r.getMessage()]) == 1  # logged once
    with SoundDeviceMicrophone(pre_roll=0, device="no-such-mic") as mic, \
            pytest.raises(MicrophoneError, match="no-such-mic"):
        mic.record(0.5)


def test_reader_recovers_when_the_device_comes_back() -> None:
    raw = audio_rig.feed(audio_rig.noise(20, seed=9))
    hidden = raw.with_name("unplugged")
    os.replace(raw, hidden)  # the file plugin cannot open its infile: like an unplugged USB mic
    try:
        with SoundDeviceMicrophone(pre_roll=1.0) as mic:
            assert mic.fault is not None and not mic.is_capturing
            os.replace(hidden, raw)
            assert wait_for(lambda: mic.fault is None, 3.0)  # first retry after 1 s
            assert mic.is_capturing
            assert mic.record(0.2).frames >= RATE // 5
    finally:
        if hidden.exists():
            os.replace(hidden, raw)


def test_close_stops_the_reader_promptly_and_ends_waiting_clips() -> None:
    audio_rig.feed(audio_rig.noise(20, seed=10))
    mic = SoundDeviceMicrophone(pre_roll=1.0)
    mic.start()
    time.sleep(1.2)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(mic.record, 10.0)
        time.sleep(0.3)
        begun = time.monotonic()
        mic.close()
        assert time.monotonic() - begun < 0.5
        clip = waiting.result(timeout=2)
    assert not mic.is_running and not mic.is_capturing
    assert "microphone-reader" not in {t.name for t in threading.enumerate()}
    assert RATE <= clip.frames < 2 * RATE  # the pre-roll and what came before close()
    mic.close()  # idempotent
    with pytest.raises(MicrophoneError, match="closed"):
        mic.record(1.0)


def test_restart_after_rewinds_the_file_before_its_end() -> None:
    ramp = np.arange(round(1.5 * RATE), dtype=np.int16)  # sample value = offset in the file
    audio_rig.feed(ramp)
    with SoundDeviceMicrophone(pre_roll=1.0, restart_after=1.0) as mic:
        time.sleep(2.3)
        got = samples_of(mic.record(0.5))
    assert abs(len(got) - 1.5 * RATE) <= BLOCK
    assert got.max() < RATE  # never read past 1.0 s of the file, where garbage would follow
    jumps = np.flatnonzero(np.diff(got) != 1)
    assert len(jumps) >= 1 and all(got[j + 1] == 0 for j in jumps)  # each break starts over


def test_sim_audio_in_a_fresh_process(tmp_path: Path) -> None:
    """prepare_sim_audio() before sounddevice loads: the simulated kiosk hears its chirp."""
    script = """
import json, sys, time
from pathlib import Path
from safehouse.drivers.microphone import sim_microphone
from safehouse.drivers.sim_audio import chirp_signal, prepare_sim_audio
import numpy as np
audio = prepare_sim_audio(Path(sys.argv[1]), seconds=8)
assert prepare_sim_audio(Path(sys.argv[1]), seconds=8) == audio  # idempotent
with sim_microphone(Path(sys.argv[1]), pre_roll=0.5, seconds=8) as mic:
    time.sleep(0.7)
    clip = mic.record(0.3)
raw = np.fromfile(audio.raw, dtype="<i2")
got = np.frombuffer(clip.wav[44:], dtype="<i2")
first = clip.first_frame_index
print(json.dumps({"frames": clip.frames, "same": bool((raw[first:first + clip.frames] == got).all()),
                  "chirp": bool((raw == chirp_signal(8)).all()), "conf": str(audio.conf),
                  "restart_after": audio.restart_after}))
"""
    env = {k: v for k, v in os.environ.items() if k != "ALSA_CONFIG_PATH"}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    result = json.loads(out.stdout)
    assert result == {"frames": round(0.8 * RATE), "same": True, "chirp": True,
                      "conf": str(tmp_path / "sim-audio" / "asound.conf"), "restart_after": 6.0}
    assert "pcm.!default fakemic" in (tmp_path / "sim-audio" / "asound.conf").read_text()


def test_a_second_sim_audio_dir_takes_over_for_streams_opened_later(tmp_path: Path) -> None:
    """ALSA re-reads ALSA_CONFIG_PATH at each open: two simulated kiosks in one process work."""
    rig = audio_rig.install()
    other = prepare_sim_audio(tmp_path, seconds=4)
    try:
        assert os.environ["ALSA_CONFIG_PATH"] == str(other.conf)
        with SoundDeviceMicrophone(pre_roll=0) as mic:
            clip = mic.record(0.1)
        np.testing.assert_array_equal(samples_of(clip), chirp_signal(4)[: clip.frames])
    finally:
        audio_rig.install()
    assert os.environ["ALSA_CONFIG_PATH"] == str(rig.conf)


def test_sim_audio_refuses_to_replace_a_foreign_config_once_sounddevice_is_loaded(tmp_path: Path) -> None:
    foreign = tmp_path / "asound.conf"
    foreign.write_text(audio_rig.install().conf.read_text().split("\n", 1)[1])  # no safehouse marker
    script = """
import sys
from pathlib import Path
import sounddevice
from safehouse.drivers.microphone import MicrophoneError
from safehouse.drivers.sim_audio import chirp_signal, prepare_sim_audio
try:
    prepare_sim_audio(Path(sys.argv[1]))
except MicrophoneError as exc:
    print(exc)
"""
    env = {**os.environ, "ALSA_CONFIG_PATH": str(foreign)}
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "kiosk")], capture_output=True,
                         text=True, timeout=60, check=True, env=env)
    assert "sounddevice is already loaded" in out.stdout and str(foreign) in out.stdout
