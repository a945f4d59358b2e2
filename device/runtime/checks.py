"""Each part's self-test check: one function per part, given that part (never the whole kiosk).

The assembly root binds each to its part (device/runtime/assembly.py ``selftest_checks``) and
device/runtime/selftest.py runs them in the order a technician reads them. Each returns
``(ok, detail)``; an exception is a failed check with its message.
"""

from __future__ import annotations

import io
import shutil
import wave
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from safehouse.device.core.clock import Clock
from safehouse.device.core.signals import LightPattern, Sound
from safehouse.device.core.state import CoreState
from safehouse.device.runtime import spectrum
from safehouse.services.capture import call_with_timeout
from safehouse.services.outbox import Outbox

MIN_FREE_BYTES = 200 * 1024 * 1024
MAX_BACKLOG_AGE = 300.0
Result = tuple[bool, str]
Parts = Callable[[], Mapping[str, Any]]  # the capture service's camera and microphone (None: off)


class Light(Protocol):
    @property
    def pattern(self) -> str: ...
    @property
    def value(self) -> tuple[float, float]: ...


class Core(Protocol):
    """The core loop, whose state snapshot says what the parts should be doing."""

    @property
    def state(self) -> CoreState: ...


class Buzzer(Protocol):
    def play(self, sound: str) -> None: ...


class Link(Protocol):
    def view(self) -> dict[str, Any]: ...
    def round_trip(self, timeout: float) -> float: ...


def clock(clock: Clock, *, simulated: bool) -> Result:
    if clock.synced():
        return True, "synchronised"
    detail = "NOT synchronised (no NTP yet? events carry clock_synced=false)"
    if simulated:
        return True, detail + "; the host's clock, not counted in simulation"
    return False, detail


def light(light: Light, core: Core) -> Result:
    red, blue = light.value
    now = core.state
    if light.pattern != now.light:
        return False, f"plays {light.pattern!r} but the kiosk asked for {now.light!r}"
    if now.lamp.fault:
        return False, "the lamp sensor reports the sign dark"
    lit = red > 0 or blue > 0 or light.pattern not in (LightPattern.BEACON, LightPattern.OFF)
    return lit, f"pattern {light.pattern}, red {red:.2f}, blue {blue:.2f}" + ("" if lit else ": DARK")


def button(core: Core) -> Result:
    button = core.state.button
    if button.stuck:
        return False, "held down past button.stuck_after: check the button"
    return not button.pressed, "released" if not button.pressed else "pressed right now"


def microphone(parts: Parts, *, enabled: bool, buzzer: Buzzer, tone_hz: float | None) -> Result:
    """The acoustic loop campus emergency stations run: play a tone, find it in the audio.

    On a kiosk with a tonal buzzer (``tone_hz``: the tone it plays for ``Sound.SELFTEST``) the
    buzzer plays for a second while the microphone records, and the loudest frequency must be
    that tone. A plain buzzer or a simulated kiosk (whose microphone hears a file, not the room),
    ``tone_hz`` None, checks the audio arrives.
    """
    mic = parts().get("microphone")
    if mic is None:
        return True, "disabled in config" if not enabled else "unavailable"
    if tone_hz is not None:
        buzzer.play(Sound.SELFTEST)
    clip = mic.record(0.8)
    with wave.open(io.BytesIO(clip.wav)) as wav:
        pcm = wav.readframes(wav.getnframes())
    heard = pcm[2 * clip.pre_roll_frames:] if tone_hz is not None else pcm
    device = _mic_device(mic)
    if len(heard) < 4:
        return False, device + "no audio"
    rms, peak_hz = spectrum.loudest(heard, clip.rate)
    if tone_hz is not None:
        ok = abs(peak_hz - tone_hz) <= tone_hz * 0.05 and rms > 30.0
        return ok, device + (f"buzzer tone {tone_hz:.0f} Hz, heard loudest {peak_hz:.0f} Hz "
                             f"at level {rms:.0f}")
    seconds = len(heard) / 2 / clip.rate  # heard is 16-bit PCM: two bytes a sample
    return rms > 30.0, device + (f"{seconds:.1f} s heard, level {rms:.0f}, loudest "
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


def camera(parts: Parts, *, timeout: float) -> Result:
    camera = parts().get("camera")
    if camera is None:
        return True, "disabled in config"
    camera.start()
    frame = call_with_timeout(camera.capture, timeout, "camera")
    ok = frame.jpeg[:2] == b"\xff\xd8" and len(frame.jpeg) > 1000
    return ok, f"snapshot {frame.width}x{frame.height}, {len(frame.jpeg)} bytes"


def keypad(keypad: Any | None) -> Result:
    """``keypad``: the keypad driver, None when ``keypad.port`` is empty."""
    if keypad is None:
        return True, "not configured (keypad.port = \"\")"
    if keypad.is_connected and getattr(keypad, "flooding", False):
        return False, ("connected, but the line floods (input ignored until it is quiet): "
                       "check keypad.baud and the cable")
    return bool(keypad.is_connected), "connected" if keypad.is_connected else "NOT connected: check the cable"


def broker(link: Link, *, url: str) -> Result:
    """A real round trip through the broker over the daemon's OWN uplink connection.

    Never a second connection: the precinct broker makes any connection with the kiosk's
    certificate the kiosk itself (``use_username_as_clientid``), so a second one would take
    the daemon's session over and show the precinct a false offline (services/link_probe.py).
    """
    view = link.view()
    if view["state"] == "disabled":
        return True, "no broker configured: offline by design"
    try:
        seconds = link.round_trip(timeout=5.0)
    except Exception as exc:
        view = link.view()
        return False, f"round trip through {url} failed: {exc}; uplink {view['state']}" + (
            f": {view['reason']}" if view.get("reason") else "")
    view = link.view()
    ok = view["state"] == "online"
    detail = f"round trip {seconds * 1000:.0f} ms on the uplink's own connection; uplink {view['state']}"
    return ok, detail + ("" if ok else f": {view.get('reason') or 'connecting'}")


def disk(state_dir: Path) -> Result:
    usage = shutil.disk_usage(state_dir)
    return usage.free >= MIN_FREE_BYTES, f"{usage.free // (1024 * 1024)} MB free on the state partition"


def outbox(outbox: Outbox, *, offline: bool) -> Result:
    """``offline``: no broker configured, so a backlog's age says nothing."""
    stats = outbox.stats()
    age = stats.oldest_pending_age_s
    waiting = sum(stats.depth.values())
    ok = not stats.near_full and (age is None or age < MAX_BACKLOG_AGE or offline)
    return ok, f"{waiting} waiting" + (f", oldest {age:.0f} s" if age is not None else "")


def storage(fault: Callable[[], str | None]) -> Result:
    """The state files: written to disk, or the kiosk is running from memory (and why)."""
    now = fault()
    if now:
        return False, (f"running from memory: {now}; see README 'storage fault' (df, dmesg, "
                       "`safehouse outbox --check` with the daemon stopped)")
    return True, "outbox and daily counts on disk"
