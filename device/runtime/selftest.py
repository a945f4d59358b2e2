"""`safehouse selftest`: prove each part of a running kiosk works, one line per part.

Run on the daemon's side (its control socket, or `cmd/selftest` from the precinct), so it
tests the very objects that serve alarms. Each check returns ok / detail; nothing here
changes what the public sees for more than the checks take.
"""

from __future__ import annotations

import io
import logging
import os
import pwd
import shutil
import time
import wave
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from safehouse.device.core.signals import LightPattern, Sound
from safehouse.drivers.buzzer import SELFTEST_HZ
from safehouse.services.capture import call_with_timeout

_LOG = logging.getLogger(__name__)
MIN_FREE_BYTES = 200 * 1024 * 1024
MAX_BACKLOG_AGE = 300.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _run(name: str, fn: Callable[[], tuple[bool, str]]) -> Check:
    try:
        ok, detail = fn()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    return Check(name, ok, detail)


def run_selftest(daemon: Any) -> list[Check]:
    """Every check, in the order a technician reads them."""
    return [
        _run("light box", lambda: _light(daemon)),
        _run("panic button", lambda: _button(daemon)),
        _run("microphone", lambda: _microphone(daemon)),
        _run("camera", lambda: _camera(daemon)),
        _run("keypad", lambda: _keypad(daemon)),
        _run("broker", lambda: _broker(daemon)),
        _run("disk", lambda: _disk(daemon)),
        _run("clock", lambda: _clock(daemon)),
        _run("outbox", lambda: _outbox(daemon)),
        _run("storage", lambda: _storage(daemon)),
    ]


def process_identity() -> dict[str, Any]:
    """Who ran the checks: a check is only as good as the process it ran in (the unit's user,
    sandbox and devices, or a technician's root shell), so every answer says which."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return {"pid": os.getpid(), "uid": os.getuid(), "user": user,
            "systemd_invocation": os.environ.get("INVOCATION_ID") or None}


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


def _clock(daemon: Any) -> tuple[bool, str]:
    if daemon.clock.synced():
        return True, "synchronised"
    detail = "NOT synchronised (no NTP yet? events carry clock_synced=false)"
    if daemon.config.device.hardware == "sim":
        return True, detail + "; the host's clock, not counted in simulation"
    return False, detail


def _light(daemon: Any) -> tuple[bool, str]:
    light = daemon.hardware.light
    red, blue = light.value
    state = daemon.loop.state
    if light.pattern != state.light:
        return False, f"plays {light.pattern!r} but the kiosk asked for {state.light!r}"
    if state.lamp.fault:
        return False, "the lamp sensor reports the sign dark"
    lit = red > 0 or blue > 0 or light.pattern not in (LightPattern.BEACON, LightPattern.OFF)
    return lit, f"pattern {light.pattern}, red {red:.2f}, blue {blue:.2f}" + ("" if lit else ": DARK")


def _button(daemon: Any) -> tuple[bool, str]:
    button = daemon.loop.state.button
    if button.stuck:
        return False, "held down past button.stuck_after: check the button"
    return not button.pressed, "released" if not button.pressed else "pressed right now"


def _microphone(daemon: Any) -> tuple[bool, str]:
    """The acoustic loop campus emergency stations run: play a tone, find it in the audio.

    On a kiosk with a tonal buzzer the buzzer plays 1760 Hz for a second while the
    microphone records, and the loudest frequency must be that tone. A plain buzzer or a
    simulated kiosk (whose microphone hears a file, not the room) checks the audio arrives.
    """
    mic = daemon.capture.parts().get("microphone")
    if mic is None:
        return True, "disabled in config" if not daemon.config.microphone.enabled else "unavailable"
    buzzer = daemon.hardware.buzzer
    loop = (buzzer is not None and daemon.config.buzzer.tonal and daemon.config.device.hardware == "pi")
    if loop:
        buzzer.play(Sound.SELFTEST)
    clip = mic.record(0.8)
    import numpy as np

    with wave.open(io.BytesIO(clip.wav)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    heard = samples[clip.pre_roll_frames:] if loop else samples
    device = _mic_device(mic)
    if len(heard) == 0:
        return False, device + "no audio"
    rms = float(np.sqrt(np.mean(heard * heard)))
    spectrum = np.abs(np.fft.rfft(heard))
    peak_hz = float(np.argmax(spectrum[1:]) + 1) * clip.rate / len(heard)
    if loop:
        ok = abs(peak_hz - SELFTEST_HZ) <= SELFTEST_HZ * 0.05 and rms > 30.0
        return ok, device + (f"buzzer tone {SELFTEST_HZ:.0f} Hz, heard loudest {peak_hz:.0f} Hz "
                             f"at level {rms:.0f}")
    return rms > 30.0, device + (f"{len(heard) / clip.rate:.1f} s heard, level {rms:.0f}, loudest "
                                 f"{peak_hz:.0f} Hz (no acoustic loop: needs a tonal buzzer on real "
                                 "hardware)")


def _mic_device(mic: Any) -> str:
    """Which device the clip came from and at what rate: a USB microphone that only does
    44.1/48 kHz is opened at that rate and resampled, and the technician sees so."""
    name = getattr(mic, "device_name", None)
    if name is None:
        return ""
    used = mic.device_rate
    how = "" if used == mic.rate else f", resampled to {mic.rate} Hz"
    stalls = f", restarted after {mic.stalls} stall(s)" if mic.stalls else ""
    return f"{name!r} (native {mic.native_rate} Hz, opened at {used} Hz{how}{stalls}): "


def _camera(daemon: Any) -> tuple[bool, str]:
    camera = daemon.capture.parts().get("camera")
    if camera is None:
        return True, "disabled in config"
    camera.start()
    frame = call_with_timeout(camera.capture, daemon.config.camera.timeout, "camera")
    ok = frame.jpeg[:2] == b"\xff\xd8" and len(frame.jpeg) > 1000
    return ok, f"snapshot {frame.width}x{frame.height}, {len(frame.jpeg)} bytes"


def _keypad(daemon: Any) -> tuple[bool, str]:
    keypad = daemon.hardware.keypad
    if keypad is None:
        return True, "not configured (keypad.port = \"\")"
    if keypad.is_connected and getattr(keypad, "flooding", False):
        return False, ("connected, but the line floods (input ignored until it is quiet): "
                       "check keypad.baud and the cable")
    return bool(keypad.is_connected), "connected" if keypad.is_connected else "NOT connected: check the cable"


def _broker(daemon: Any) -> tuple[bool, str]:
    """A real round trip through the broker over the daemon's OWN uplink connection.

    Never a second connection: the precinct broker makes any connection with the kiosk's
    certificate the kiosk itself (``use_username_as_clientid``), so a second one would take
    the daemon's session over and show the precinct a false offline (services/link_probe.py).
    """
    link = daemon.link()
    if link["state"] == "disabled":
        return True, "no broker configured: offline by design"
    url = daemon.config.broker.url
    try:
        seconds = daemon.uplink.round_trip(timeout=5.0)
    except Exception as exc:
        link = daemon.link()
        return False, f"round trip through {url} failed: {exc}; uplink {link['state']}" + (
            f": {link['reason']}" if link.get("reason") else "")
    link = daemon.link()
    ok = link["state"] == "online"
    detail = f"round trip {seconds * 1000:.0f} ms on the uplink's own connection; uplink {link['state']}"
    return ok, detail + ("" if ok else f": {link.get('reason') or 'connecting'}")


def _disk(daemon: Any) -> tuple[bool, str]:
    usage = shutil.disk_usage(daemon.config.device.state_dir)
    return usage.free >= MIN_FREE_BYTES, f"{usage.free // (1024 * 1024)} MB free on the state partition"


def _outbox(daemon: Any) -> tuple[bool, str]:
    stats = daemon.outbox.stats()
    age = stats.oldest_pending_age_s
    waiting = sum(stats.depth.values())
    ok = not stats.near_full and (age is None or age < MAX_BACKLOG_AGE or daemon.uplink is None)
    return ok, f"{waiting} waiting" + (f", oldest {age:.0f} s" if age is not None else "")


def _storage(daemon: Any) -> tuple[bool, str]:
    """The state files: written to disk, or the kiosk is running from memory (and why)."""
    fault = daemon.runner.storage_fault()
    if fault:
        return False, (f"running from memory: {fault}; see README 'storage fault' (df, dmesg, "
                       "`safehouse outbox --check` with the daemon stopped)")
    return True, "outbox and daily counts on disk"


def timed(daemon: Any) -> tuple[list[Check], float]:
    t0 = time.monotonic()
    checks = run_selftest(daemon)
    return checks, time.monotonic() - t0
