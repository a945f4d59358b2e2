"""Sim only: unplug and replug the simulated keypad and microphone, as a technician would.

`safehouse accept` asks the technician to pull the keypad's and the microphone's cables and
put them back. On a simulated kiosk `safehouse simulate keypad|microphone unplug|replug`
does it at the boundary the drivers talk to, so the real drivers see what they see on a Pi:
reads fail, reopening fails while the cable is out, and works again once it is back.

- keypad: pyserial's ``loop://`` port fails its reads and opens;
- microphone: the simulated ALSA device disappears from the ALSA configuration the sim
  microphone reads (``ALSA_CONFIG_PATH``, see drivers/sim_audio.py), the stream that is open
  dies — a capture child process (``safehouse.drivers.mic_child``) is killed, an in-process
  sounddevice stream fails its reads — and the device is back, same name, once replugged.

The drivers themselves are not touched, so their loss and recovery paths are the ones under
test. Only a simulated daemon calls this (``ControlHandlers.simulate`` refuses on real hardware);
the patches are process-wide, which is harmless there: the keypad is the only ``loop://``
port and the microphone the only input stream.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import HardwareError

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_SAVED: dict[tuple[type, str], Any] = {}
_ABSENT = object()
_ALSA_SAVED: dict[Path, str] = {}
_MIC_CHILD = b"safehouse.drivers.mic_child"


def unplugged() -> list[str]:
    """The simulated parts whose cable is out right now."""
    with _LOCK:
        return sorted({_part_of(cls) for cls, _name in _SAVED} | ({"microphone"} if _ALSA_SAVED else set()))


def unplug(part: str) -> None:
    """Pull the simulated part's cable (idempotent)."""
    with _LOCK:
        patches = _patches(part)
        for cls, name, replacement in patches:
            if (cls, name) not in _SAVED:
                _SAVED[(cls, name)] = cls.__dict__.get(name, _ABSENT)
                setattr(cls, name, replacement)
        if part == "microphone" and not _alsa_device(present=False) and not patches:
            raise HardwareError("only the simulated microphone (microphone.device = \"\") can be unplugged")
        if part == "microphone":
            _kill_capture_children()
    _LOG.warning("simulated %s unplugged", part)


def replug(part: str) -> None:
    """Put the simulated part's cable back (idempotent)."""
    with _LOCK:
        for cls, name, _replacement in _patches(part):
            original = _SAVED.pop((cls, name), None)
            if original is None:
                continue
            if original is _ABSENT:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
        if part == "microphone":
            _alsa_device(present=True)
    _LOG.warning("simulated %s plugged back in", part)


def _part_of(cls: type) -> str:
    return "keypad" if cls.__module__.startswith("serial") else "microphone"


def _alsa_device(*, present: bool) -> bool:
    """Take the simulated microphone out of (or put it back into) the sim's ALSA config.

    True when the simulator's ALSA config is (now) without the device."""
    from safehouse.drivers.sim_audio import ASOUND_CONF

    conf = Path(os.environ.get("ALSA_CONFIG_PATH", ""))
    marker = ASOUND_CONF.splitlines()[0]
    if present:
        text = _ALSA_SAVED.pop(conf, None)
        if text is not None:
            conf.write_text(text, encoding="utf-8")
        return False
    if conf in _ALSA_SAVED:
        return True
    try:
        text = conf.read_text(encoding="utf-8")
    except OSError:
        return False  # not the simulator's ALSA config: nothing of ours to unplug
    if not text.startswith(marker):
        return False
    _ALSA_SAVED[conf] = text
    conf.write_text(f"{marker}\n# no microphone: unplugged by `safehouse simulate microphone unplug`\n",
                    encoding="utf-8")
    return True


def _kill_capture_children() -> None:
    """The open stream dies with its device: end this process's capture children, if any."""
    me = str(os.getpid())
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            ppid = (proc / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if ppid == me and _MIC_CHILD in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
            except OSError:
                continue


def _patches(part: str) -> list[tuple[type, str, Any]]:
    if part == "keypad":
        import serial
        from serial.urlhandler.protocol_loop import Serial as LoopSerial

        def read(self: Any, size: int = 1) -> bytes:
            raise serial.SerialException("device reports readiness to read but returned no data "
                                         "(device disconnected or multiple access on port?)")

        def open_(self: Any) -> None:
            raise serial.SerialException(f"could not open port {self.portstr}: [Errno 2] No such file "
                                         "or directory (simulated: cable pulled)")

        return [(LoopSerial, "read", read), (LoopSerial, "open", open_)]
    if part == "microphone":
        if "sounddevice" not in sys.modules:
            return []  # PortAudio runs in a capture child process (or not yet at all)
        import sounddevice

        def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise sounddevice.PortAudioError("Error opening InputStream: Device unavailable "
                                             "[PaErrorCode -9985] (simulated: cable pulled)")

        return [(cls, name, fail) for cls in (sounddevice.InputStream, sounddevice.RawInputStream)
                for name in ("read", "start")]
    raise ValueError(f"cannot unplug {part!r}: only keypad or microphone")
