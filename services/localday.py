"""Local calendar days, DST-safe: the daily counts are kept per local day, and a volunteer's
duty that spans midnight is split across the two days it touches."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_LOG = logging.getLogger(__name__)


def local_zone() -> tzinfo:
    """The system's zone with its DST rules: $TZ, else /etc/localtime (what raspi-config sets)."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            _LOG.warning("stats: TZ=%r is not a zone name; using /etc/localtime", name)
    try:
        target = Path("/etc/localtime").resolve()
        if "zoneinfo" in target.parts:
            key = "/".join(target.parts[target.parts.index("zoneinfo") + 1:])
            try:
                return ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError):
                pass
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        _LOG.warning("stats: no readable /etc/localtime; days follow UTC (set the zone: raspi-config)")
        return UTC


def zone_name(tz: tzinfo) -> str:
    key = getattr(tz, "key", None)
    return str(key) if key else str(tz.tzname(None) or tz)


def date_of(ts: float, tz: tzinfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def midnight(day: date, tz: tzinfo) -> float:
    """Wall time of the first instant of ``day`` in ``tz`` (a midnight in a DST gap: the jump)."""
    return datetime.combine(day, dtime(0), tzinfo=tz).timestamp()


def next_midnight(now: float, tz: tzinfo) -> float:
    day = date_of(now, tz) + timedelta(days=1)
    while (edge := midnight(day, tz)) <= now:  # only in zones whose clocks go back over midnight
        day += timedelta(days=1)
    return edge


def split_at_midnights(start: float, end: float, tz: tzinfo) -> Iterator[tuple[str, float]]:
    """``[start, end)`` cut at local midnights: (day, seconds) per day it touches."""
    while start < end:
        edge = min(end, next_midnight(start, tz))
        yield date_of(start, tz).isoformat(), edge - start
        start = edge


def day_bounds(day: str, tz: tzinfo) -> tuple[float, float]:
    d = date.fromisoformat(day)
    return midnight(d, tz), midnight(d + timedelta(days=1), tz)
