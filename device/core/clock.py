"""Where time comes from: wall clock, monotonic clock, boot id, and whether NTP has synced.

A Pi has no RTC: until NTP syncs, wall time may be 1970 or last shutdown's. Every event
therefore carries ``clock_synced`` plus monotonic time and the boot id, so the precinct can
order a kiosk's events even when its wall clock lied.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from safehouse.device.core.files import read_back, write_atomic

TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_TIME_ERROR = 5  # adjtimex(2): clock not synchronised


class Clock(Protocol):
    def wall(self) -> float: ...
    def mono(self) -> float: ...
    def synced(self) -> bool: ...


def read_boot_id() -> str:
    """The kernel's boot id; a random stand-in if /proc is unavailable (never fails)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return str(uuid.uuid4())


def _adjtimex_synced() -> bool | None:
    """Ask the kernel directly (works with chrony/ntpd, not only systemd-timesyncd)."""
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name, use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, modes = 0: read only
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != _TIME_ERROR


class SystemClock:
    """The real clocks; ``synced()`` is cached briefly because every event asks."""

    def __init__(self, *, cache_seconds: float = 10.0) -> None:
        self._cache_seconds = cache_seconds
        self._synced = False
        self._checked_at = float("-inf")

    def wall(self) -> float:
        return time.time()

    def mono(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        now = time.monotonic()
        if now - self._checked_at >= self._cache_seconds:
            kernel = _adjtimex_synced()
            self._synced = TIMESYNC_FLAG.exists() or bool(kernel)
            self._checked_at = now
        return self._synced


class SimClock(SystemClock):
    """Simulated hardware's wall clock: the system clock plus an offset that can be jumped.

    A chaos run must step the kiosk's wall clock (±1 h, as an NTP step or an RTC-less boot
    does) without touching the machine's own clock, which other programs share. The offset
    lives in ``offset_file`` so a restarted daemon keeps the jumped time, as the real clock
    would; monotonic time is never affected, exactly like a real step.
    """

    MAX_OFFSET = 366 * 86400.0

    def __init__(self, offset_file: Path, *, cache_seconds: float = 10.0) -> None:
        super().__init__(cache_seconds=cache_seconds)
        self._file = offset_file
        try:  # read back without following a link; a bad file is no jump at all
            self.offset = float(read_back(offset_file, 64).decode("ascii"))
        except (OSError, ValueError):
            self.offset = 0.0
        if not abs(self.offset) <= self.MAX_OFFSET:  # nan or inf: no wall time at all
            self.offset = 0.0

    def wall(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> float:
        """Step the wall clock by ``seconds`` (0 to undo every jump); return the new offset."""
        offset = self.offset + seconds if seconds else 0.0
        if not abs(offset) <= self.MAX_OFFSET:  # not `>`: nan compares false both ways
            raise ValueError(f"the simulated clock may be off by at most {self.MAX_OFFSET:g} s")
        write_atomic(self._file, repr(offset).encode("ascii"), 0o600)
        self.offset = offset
        return offset


def iso_utc(wall: float) -> str:
    """RFC 3339 UTC with milliseconds, the `ts` format of every payload."""
    return datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
