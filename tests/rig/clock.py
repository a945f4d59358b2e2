"""A clock that moves only when a test moves it (no test reads the wall clock).

Production takes time in two shapes, and this one class is both: called, it is the services'
wall clock (``clock: Callable[[], float]`` of the outbox, the evidence store, the daily stats);
with ``wall()``/``mono()``/``synced()`` it is the core's ``Clock`` protocol
(``safehouse.device.core.clock``: the loop, the keypad lockout store).
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC: the default wall time, far from any epoch edge


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> float:
    """The POSIX time of a local wall time in ``tz`` (a test's days are the kiosk's local days)."""
    return datetime(y, mo, d, h, mi, tzinfo=tz).timestamp()


class FakeClock:
    """Wall time ``t`` and monotonic time ``now``; ``advance()`` moves both, as real time does.

    Tests may also set ``t`` or ``now`` directly (a wall clock that jumps, a restart that resets
    the monotonic clock); ``is_synced`` says whether NTP has set the wall clock.
    """

    def __init__(self, t: float = T0, *, mono: float = 0.0, synced: bool = True) -> None:
        self.t, self.now, self.is_synced = t, mono, synced

    def __call__(self) -> float:
        return self.t

    def wall(self) -> float:
        return self.t

    def mono(self) -> float:
        return self.now

    def synced(self) -> bool:
        return self.is_synced

    def advance(self, seconds: float) -> None:
        self.now += seconds
        self.t += seconds
