"""Wall-clock jobs: the daily summary at local midnight and the configured roll-call times.

One thread sleeps until the next job (woken at least every minute, so a clock set by NTP
after boot is noticed), runs it, and goes back to sleep. Jobs only enqueue inputs; the core
decides what they mean.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from safehouse.device.core.inputs import DaySummarised, Input, RollcallStarted
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)
MAX_SLEEP = 60.0


def next_time_of_day(now: float, times: Sequence[str]) -> float | None:
    """Wall time of the next local HH:MM in ``times`` after ``now`` (None if there are none)."""
    if not times:
        return None
    local = datetime.fromtimestamp(now).astimezone()
    candidates = []
    for hhmm in times:
        hour, minute = (int(x) for x in hhmm.split(":"))
        at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
        if at.timestamp() <= now:
            at = (at + timedelta(days=1)).replace(hour=hour, minute=minute)
        candidates.append(at.timestamp())
    return min(candidates)


class ClockJobs(Worker):
    """The "clock-jobs" thread; ``start()`` and ``close()`` come from the Worker base."""

    def __init__(self, stats: Any, put: Callable[[Input], None], *, rollcall_times: Sequence[str] = (),
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(name="clock-jobs", join_seconds=1.0)
        self._stats, self._put, self._times, self._clock = stats, put, tuple(rollcall_times), clock

    def summarise_due(self) -> None:
        """Close every finished day not yet summarised (also catches up after downtime)."""
        try:
            for date in self._stats.unsummarised():
                counts = self._stats.close_day(date)
                self._put(DaySummarised(date=date, counts=counts.counters()))
        except Exception:
            _LOG.exception("daily summary failed; retrying at the next wake-up")

    def run(self) -> None:
        self.summarise_due()
        while not self.stopping.is_set():
            now = self._clock()
            midnight = self._stats.next_midnight(now)
            rollcall = next_time_of_day(now, self._times)
            due = min(t for t in (midnight, rollcall) if t is not None)
            if self.stopping.wait(min(MAX_SLEEP, max(0.0, due - now))):
                return
            now = self._clock()
            if now >= midnight:
                self.summarise_due()
            if rollcall is not None and now >= rollcall:
                self._put(RollcallStarted("schedule"))
