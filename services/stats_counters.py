"""What the kiosk counts each day, and which recorded event moves which counter.

Kept apart from the database (``services/stats.py``) so the counting rules are one table a
reader can check at a glance, and so the CLI's read-only view and the daemon's writer share one
definition of a day's counts without either importing the other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import date
from types import MappingProxyType
from typing import Any

__all__ = ["COUNTERS", "EVENT_COUNTERS", "DayCounts", "check_date", "counters_for"]

#: Event -> the counters it adds one to. ``resolved`` is keyed by its ``data["outcome"]``; a
#: ``duress`` PIN used on an active alarm (``data["alarm_id"]`` set) is ``duress:on_alarm``, not a
#: second alarm; a test event is looked up as ``test:<key>``, so test events count only where
#: listed (as test alarms). Unlisted events and outcomes (``cancelled``, ``superseded``) count
#: nothing. ``duty_on``/``duty_off`` (data ``volunteer``) move ``duty_seconds`` via open sessions.
EVENT_COUNTERS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "panic": ("alarms",),
    "duress": ("alarms",),  # a silent alarm raised with no alarm active
    "test:panic": ("test_alarms",),
    "resolved:assistance": ("people_helped",),
    "resolved:police": ("police",),
    "resolved:false_alarm": ("false_alarms",),
    "walk_in": ("walk_ins", "people_helped"),
    "clue": ("clues",),
    "rollcall_answered": ("rollcalls_answered",),
    "rollcall_missed": ("rollcalls_missed",),
    "keypad_lockout": ("wrong_pin_lockouts",),
})

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class DayCounts:
    """One local day's counts; ``duty_seconds`` includes open duty up to now until the day is closed."""

    date: str
    alarms: int = 0
    test_alarms: int = 0
    people_helped: int = 0
    walk_ins: int = 0
    clues: int = 0
    police: int = 0
    false_alarms: int = 0
    duty_seconds: float = 0.0
    rollcalls_answered: int = 0
    rollcalls_missed: int = 0
    wrong_pin_lockouts: int = 0

    @property
    def duty_hours(self) -> float:
        return self.duty_seconds / 3600.0

    def counters(self) -> dict[str, Any]:
        """The counters without ``date`` (the ``daily_summary`` data), duty also in hours."""
        return {**{k: v for k, v in asdict(self).items() if k != "date"},
                "duty_seconds": round(self.duty_seconds, 3), "duty_hours": round(self.duty_hours, 3)}

    def as_dict(self) -> dict[str, Any]:
        return {"date": self.date, **self.counters()}


COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(DayCounts) if f.name != "date")


def counters_for(event_type: str, data: Mapping[str, Any], *, test: bool) -> tuple[str, ...]:
    """The counters one event adds one to, per ``EVENT_COUNTERS`` (duty is not among them)."""
    key = event_type
    if event_type == "resolved":
        key = f"resolved:{data.get('outcome')}"
    elif event_type == "duress" and data.get("alarm_id") is not None:
        key = "duress:on_alarm"
    return EVENT_COUNTERS.get(f"test:{key}" if test else key, ())


def check_date(text: str) -> str:
    """``text`` if it is a real ``YYYY-MM-DD`` date, else ValueError saying so."""
    try:
        if not _DATE.fullmatch(text):
            raise ValueError
        date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date {text!r} is not a calendar date written YYYY-MM-DD "
                         "(e.g. 2025-03-31)") from None
    return text
