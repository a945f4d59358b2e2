"""`safehouse status` names the microphone: device, native rate, the rate it is opened at, faults.

A real sim daemon (tests/rig/daemon.py) with the rig's 48 kHz-only USB microphone
(tests/rig/audio.py: a real ALSA device under the real sounddevice -> PortAudio path), asked
through the real CLI, as a technician would when a mic that "does not work" is plugged in.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.rig import audio as audio_rig
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

pytestmark = pytest.mark.usefixtures("portaudio")  # sounddevice under the rig's microphone


def _opened(proc: DaemonProcess, timeout: float = 15.0) -> dict[str, Any]:
    """The status once the capture process has opened the device (it starts in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        mic: dict[str, Any] = proc.status()["microphone"]
        if mic.get("capturing") or time.monotonic() > deadline:
            return mic
        time.sleep(0.1)


def test_status_names_a_48khz_usb_microphone_and_the_rate_it_is_resampled_to(short_dir: Path) -> None:
    extra = '[camera]\nenabled = false\n[microphone]\npre_roll = 1.0\ndevice = "usbmic"\n'
    proc = audio_rig.usb_mic_daemon(short_dir, extra)
    try:
        mic = _opened(proc)
        text = proc.ok("status")
    finally:
        proc.kill()
    assert mic == {"enabled": True, "device": "usbmic", "native_rate": 48000, "device_rate": 48000,
                   "rate": 16000, "stalls": 0, "overflows": 0, "capturing": True, "fault": None}
    [line] = [row for row in text.splitlines() if row.startswith("mic ")]
    assert line.split(maxsplit=1)[1] == ("'usbmic', native 48000 Hz, opened at 48000 Hz, resampled to "
                                         "16000 Hz; 0 stall(s), 0 overflow(s)")
    assert "MICROPHONE FAULT" not in text


def test_status_names_a_microphone_that_cannot_be_opened(short_dir: Path) -> None:
    extra = '[camera]\nenabled = false\n[microphone]\npre_roll = 1.0\ndevice = "no-such-microphone"\n'
    proc = DaemonProcess(write_config(short_dir, extra, capture=True), short_dir / "ctl.sock").start()
    try:
        deadline = time.monotonic() + 15.0
        while not proc.status()["microphone"].get("fault") and time.monotonic() < deadline:
            time.sleep(0.1)
        mic = proc.status()["microphone"]
        text = proc.ok("status")
    finally:
        proc.kill()
    assert mic["enabled"] is True and not mic["capturing"] and "no-such-microphone" in mic["fault"]
    assert "MICROPHONE FAULT" in text
    [line] = [row for row in text.splitlines() if row.startswith("mic ")]
    assert "FAULT: " in line and "no-such-microphone" in line


def test_status_says_when_there_is_no_microphone(short_dir: Path) -> None:
    proc = DaemonProcess(write_config(short_dir), short_dir / "ctl.sock").start()  # microphone disabled
    try:
        assert json.loads(proc.ok("status", "--json"))["microphone"] == {"enabled": False}
        [line] = [row for row in proc.ok("status").splitlines() if row.startswith("mic ")]
    finally:
        proc.kill()
    assert "none (microphone.enabled = false" in line
