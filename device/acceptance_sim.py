"""Sim only: unplug and replug the simulated keypad and microphone, as a technician would.

`safehouse accept` asks the technician to pull the keypad's and the microphone's cables and
put them back. On a simulated kiosk `safehouse simulate keypad|microphone unplug|replug`
does it at the library boundary the drivers talk to — pyserial's ``loop://`` port and
sounddevice's input streams — so the real drivers see what they see on a Pi: reads fail,
reopening fails while the cable is out, and works again once it is back. The drivers
themselves are not touched, so their loss and recovery paths are the ones under test.

Only a simulated daemon calls this (``Commands.simulate`` refuses on real hardware); the
patches are process-wide, which is harmless there: the keypad is the only ``loop://`` port
and the microphone the only input stream.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

_LOG = logging.getLogger(__name__)
_LOCK = threading.Lock()
_SAVED: dict[tuple[type, str], Any] = {}
_ABSENT = object()


def unplugged() -> list[str]:
    """The simulated parts whose cable is out right now."""
    with _LOCK:
        return sorted({_part_of(cls) for cls, _name in _SAVED})


def unplug(part: str) -> None:
    """Pull the simulated part's cable (idempotent)."""
    with _LOCK:
        for cls, name, replacement in _patches(part):
            if (cls, name) not in _SAVED:
                _SAVED[(cls, name)] = cls.__dict__.get(name, _ABSENT)
                setattr(cls, name, replacement)
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
    _LOG.warning("simulated %s plugged back in", part)


def _part_of(cls: type) -> str:
    return "keypad" if cls.__module__.startswith("serial") else "microphone"


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
        import sounddevice

        def fail(self: Any, *args: Any, **kwargs: Any) -> Any:
            raise sounddevice.PortAudioError("Error opening InputStream: Device unavailable "
                                             "[PaErrorCode -9985] (simulated: cable pulled)")

        return [(cls, name, fail) for cls in (sounddevice.InputStream, sounddevice.RawInputStream)
                for name in ("read", "start")]
    raise ValueError(f"cannot unplug {part!r}: only keypad or microphone")
