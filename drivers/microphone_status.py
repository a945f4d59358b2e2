"""What the microphone reports about itself: its fault, the device and rates, counters, memory.

Kept apart from the capture (``drivers/microphone.py``: the reader thread, the pre-roll ring,
clips) because this is the side `safehouse status`, the self-test and the hardware tests read,
from any thread, without touching the device: each value is one attribute the reader thread
keeps current. ``SoundDeviceMicrophone`` extends ``MicrophoneStatus`` and sets every attribute
declared here.
"""

from __future__ import annotations

from typing import Any

from safehouse.device.core.threads import Worker
from safehouse.drivers.mic_source import CaptureProcess
from safehouse.drivers.ring_buffer import SampleRing

__all__ = ["MicrophoneStatus"]


class MicrophoneStatus:
    """The read-only view of a microphone; the attributes are the capture's, set by its reader."""

    rate: int
    pre_roll: float
    device: str | int | None
    _worker: Worker
    _ring: SampleRing
    _anchor: float | None  # clock time of stream-frame 0 while a stream is open
    _fault: str | None
    _source: CaptureProcess | None  # the open capture process
    _opened: CaptureProcess | None  # the last one that opened the device
    _stalls: int
    _overflows: int

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name} pre_roll={self.pre_roll}s fault={self._fault!r}>"

    @property
    def _name(self) -> str:
        return "the default input" if self.device is None else f"input {self.device!r}"

    @property
    def fault(self) -> str | None:
        """Why the microphone is not capturing right now, or None when it is (or is idle)."""
        return self._fault

    @property
    def is_running(self) -> bool:
        """True between start() and close(): the reader thread is alive."""
        return self._worker.is_alive and not self._worker.stopping.is_set()

    @property
    def is_capturing(self) -> bool:
        """True while an input stream is open and delivering audio."""
        return self._anchor is not None

    @property
    def started_at(self) -> float | None:
        """Clock time of stream-frame 0 of the open stream (None while closed)."""
        return self._anchor

    @property
    def device_name(self) -> str | None:
        """PortAudio's name of the device last opened (None before the first open)."""
        return self._opened.device_name if self._opened is not None else None

    @property
    def native_rate(self) -> int | None:
        """The device's own sample rate, as PortAudio reports it (its default rate)."""
        return self._opened.native_rate if self._opened is not None else None

    @property
    def device_rate(self) -> int | None:
        """The rate the device is opened at: ``rate`` if it takes it, else resampled to ``rate``."""
        return self._opened.device_rate if self._opened is not None else None

    @property
    def stalls(self) -> int:
        """How many times the device stopped delivering and its capture was restarted."""
        return self._stalls

    @property
    def capture_pid(self) -> int | None:
        """Process id of the capture process (None while the device is closed)."""
        source = self._source
        return source.pid if source is not None else None

    @property
    def overflows(self) -> int:
        """Blocks before which PortAudio lost samples (the reader fell behind the device)."""
        return self._overflows

    def describe(self) -> dict[str, Any]:
        """Device, rates and faults in one dict, for `safehouse status` and selftest."""
        return {"device": self.device_name, "native_rate": self.native_rate,
                "device_rate": self.device_rate, "rate": self.rate, "stalls": self._stalls,
                "overflows": self._overflows, "capturing": self.is_capturing, "fault": self._fault}

    @property
    def buffer_bytes(self) -> int:
        """Memory held by the pre-roll ring (clips being recorded allocate their own)."""
        return self._ring.nbytes
