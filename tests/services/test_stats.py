"""Daily counts: the event table, local days and DST, duty split at midnight, durability across
reopen, one summary per day, and the read-only `safehouse stats` view."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from safehouse.device.core.alarm import decide
from safehouse.device.core.effects import Emit
from safehouse.device.core.errors import EventLogError, SafehouseError
from safehouse.device.core.inputs import DaySummarised
from safehouse.device.core.state import Policy, initial_state
from safehouse.services.stats import COUNTERS, DailyStats, DayCounts, read_day
from tests.rig.clock import FakeClock, at

TPE = ZoneInfo("Asia/Taipei")  # UTC+8, no DST
LDN = ZoneInfo("Europe/London")  # GMT/BST: 2025-03-30 has 23 hours, 2025-10-26 has 25
HOUR = 3600.0


def nonzero(counts: DayCounts) -> dict[str, float]:
    return {name: getattr(counts, name) for name in COUNTERS if getattr(counts, name)}


NOON = at(TPE, 2025, 3, 31, 12)


@pytest.mark.parametrize(("event", "data", "test", "expected"), [
    ("panic", {"source": "button"}, False, {"alarms": 1}),
    ("panic", {"source": "cli"}, True, {"test_alarms": 1}),
    ("duress", {"volunteer": "V1", "action": "duty_off", "alarm_id": None}, False, {"alarms": 1}),
    ("duress", {"volunteer": "V1", "action": "ack", "alarm_id": "a1"}, False, {}),  # its panic counted
    ("resolved", {"outcome": "assistance"}, False, {"people_helped": 1}),
    ("resolved", {"outcome": "police"}, False, {"police": 1}),
    ("resolved", {"outcome": "false_alarm"}, False, {"false_alarms": 1}),
    ("resolved", {"outcome": "cancelled"}, False, {}),
    ("resolved", {"outcome": "superseded"}, False, {}),
    ("resolved", {"outcome": "assistance"}, True, {}),
    ("walk_in", {}, False, {"walk_ins": 1, "people_helped": 1}),
    ("clue", {"text": "grey van"}, False, {"clues": 1}),
    ("rollcall_answered", {}, False, {"rollcalls_answered": 1}),
    ("rollcall_missed", {}, False, {"rollcalls_missed": 1}),
    ("keypad_lockout", {"attempts": 5}, False, {"wrong_pin_lockouts": 1}),
    ("ack", {"volunteer": "V1"}, False, {}),
    ("door_opened", {}, False, {}),
])
def test_each_event_moves_exactly_its_counters(tmp_path: Path, event: str, data: dict[str, Any],
                                               test: bool, expected: dict[str, int]) -> None:
    with DailyStats(tmp_path, clock=FakeClock(NOON), tz=TPE) as stats:
        stats.record(event, data, test=test)
        assert nonzero(stats.day()) == expected
        assert stats.day().date == "2025-03-31"


def test_test_alarms_are_kept_apart_and_counts_add_up(tmp_path: Path) -> None:
    with DailyStats(tmp_path, clock=FakeClock(NOON), tz=TPE) as stats:
        for test in (False, True, True, False, False):
            stats.record("panic", {}, test=test)
        stats.record("resolved", {"outcome": "assistance"}, test=False)
        stats.record("walk_in", {}, test=False)
        stats.record("walk_in", {}, test=True)
        assert nonzero(stats.day("2025-03-31")) == {"alarms": 3, "test_alarms": 2, "people_helped": 2,
                                                    "walk_ins": 1}


def test_days_are_local_calendar_days_not_utc(tmp_path: Path) -> None:
    with DailyStats(tmp_path, clock=FakeClock(NOON), tz=TPE) as stats:
        stats.record("panic", {}, test=False, ts=at(TPE, 2025, 3, 31, 7))  # 2025-03-30 23:00 UTC
        stats.record("panic", {}, test=False, ts=at(TPE, 2025, 3, 30, 23, 59))
        assert stats.day("2025-03-31").alarms == 1
        assert stats.day("2025-03-30").alarms == 1
        assert stats.date_of(at(TPE, 2025, 4, 1, 0, 0)) == "2025-04-01"


def test_counts_survive_close_and_reopen(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    stats = DailyStats(tmp_path, clock=clock, tz=TPE)
    stats.record("panic", {}, test=False)
    stats.record("resolved", {"outcome": "police"}, test=False)
    stats.record("clue", {}, test=False)
    stats.close()
    stats.close()  # idempotent
    with pytest.raises(EventLogError, match="closed"):
        stats.record("clue", {}, test=False)
    with DailyStats(tmp_path, clock=clock, tz=TPE) as again:
        again.record("clue", {}, test=False)
        assert nonzero(again.day()) == {"alarms": 1, "police": 1, "clues": 2}


WRITER = """
import sys
from pathlib import Path
from zoneinfo import ZoneInfo
from safehouse.services.stats import DailyStats
stats = DailyStats(Path(sys.argv[1]), clock=lambda: 1743393600.0, tz=ZoneInfo("Asia/Taipei"))
stats.record("duty_on", {"volunteer": "V1"}, test=False)
n = 0
while True:
    stats.record("panic", {}, test=False)
    n += 1
    print(n, flush=True)  # reported only after record() returned: durable
"""


def test_kill_9_never_loses_a_recorded_count_nor_an_open_duty(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(25)]
    os.kill(proc.pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=10)
    reported = int((lines + out.split())[-1])
    report = read_day(tmp_path, "2025-03-31", clock=FakeClock(NOON), tz=TPE)  # the CLI's view of it
    assert report is not None and report.counts.alarms >= reported and report.on_duty == ("V1",)
    with DailyStats(tmp_path, clock=FakeClock(NOON), tz=TPE) as stats:
        assert stats.day("2025-03-31").alarms == report.counts.alarms
        assert stats.on_duty() == ["V1"]


def test_duty_spanning_midnight_splits_across_the_two_days(tmp_path: Path) -> None:
    clock = FakeClock(at(TPE, 2025, 4, 2, 9))
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        stats.record("duty_on", {"volunteer": "V1"}, test=False, ts=at(TPE, 2025, 3, 31, 22))
        stats.record("duty_off", {"volunteer": "V1"}, test=False, ts=at(TPE, 2025, 4, 1, 1, 30))
        assert stats.day("2025-03-31").duty_seconds == pytest.approx(2 * HOUR)
        assert stats.day("2025-04-01").duty_seconds == pytest.approx(1.5 * HOUR)
        assert stats.day("2025-04-01").duty_hours == pytest.approx(1.5)
        assert stats.on_duty() == []


def test_duty_over_a_dst_night_counts_real_time_on_the_right_days(tmp_path: Path) -> None:
    # London, 2025-03-30 01:00 GMT -> 02:00 BST: 22:00 GMT to 03:00 BST is 4 real hours
    with DailyStats(tmp_path, clock=FakeClock(at(LDN, 2025, 3, 31, 9)), tz=LDN) as stats:
        stats.record("duty_on", {"volunteer": "V1"}, test=False, ts=at(LDN, 2025, 3, 29, 22))
        stats.record("duty_off", {"volunteer": "V1"}, test=False, ts=at(LDN, 2025, 3, 30, 3))
        assert stats.day("2025-03-29").duty_seconds == pytest.approx(2 * HOUR)
        assert stats.day("2025-03-30").duty_seconds == pytest.approx(2 * HOUR)


def test_on_duty_survives_reopen_and_open_duty_counts_toward_today(tmp_path: Path) -> None:
    clock = FakeClock(at(TPE, 2025, 3, 31, 8))
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        stats.record("duty_on", {"volunteer": "V2"}, test=False)
        clock.t += 60
        stats.record("duty_on", {"volunteer": "V1"}, test=False)
        stats.record("duty_on", {"volunteer": "V1"}, test=False)  # twice: the first start is kept
        stats.record("duty_off", {"volunteer": "nobody"}, test=False)  # ignored
    clock.t = at(TPE, 2025, 3, 31, 10)
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        assert stats.on_duty() == ["V2", "V1"]
        assert stats.day().duty_seconds == pytest.approx(2 * HOUR + 2 * HOUR - 60)
        stats.record("duty_off", {"volunteer": "V2"}, test=False)
        clock.t += HOUR
        assert stats.on_duty() == ["V1"]
        assert stats.day().duty_seconds == pytest.approx(2 * HOUR + 3 * HOUR - 60)


def test_close_day_finalises_once_and_carries_duty_into_the_next_day(tmp_path: Path) -> None:
    clock = FakeClock(at(TPE, 2025, 3, 31, 20))
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        stats.record("duty_on", {"volunteer": "V1"}, test=False)
        stats.record("panic", {}, test=False)
        with pytest.raises(ValueError, match="not ended"):
            stats.close_day("2025-03-31")
        assert stats.next_midnight(clock.t) == at(TPE, 2025, 4, 1)
        clock.t = at(TPE, 2025, 4, 1, 0, 0) + 5
        assert stats.unsummarised() == ["2025-03-31"]
        assert not stats.summarised("2025-03-31")
        closed = stats.close_day("2025-03-31")
        assert closed.alarms == 1
        assert closed.duty_seconds == pytest.approx(4 * HOUR)
        assert stats.summarised("2025-03-31") and not stats.summarised("2025-04-01")
        assert stats.unsummarised() == []
        clock.t = at(TPE, 2025, 4, 1, 2)
        assert stats.close_day("2025-03-31") == closed  # again: nothing changes
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        assert stats.summarised("2025-03-31")
        assert stats.on_duty() == ["V1"]
        stats.record("duty_off", {"volunteer": "V1"}, test=False)
        assert stats.day("2025-03-31").duty_seconds == pytest.approx(4 * HOUR)
        assert stats.day("2025-04-01").duty_seconds == pytest.approx(2 * HOUR)


def test_a_closed_day_feeds_the_cores_daily_summary(tmp_path: Path) -> None:
    clock = FakeClock(NOON)
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        stats.record("walk_in", {"volunteer": "V1"}, test=False)
        clock.t = at(TPE, 2025, 4, 1, 0, 0)
        closed = stats.close_day("2025-03-31")
    _, effects = decide(initial_state(Policy(), uuid.uuid4()),
                        DaySummarised(date=closed.date, counts=closed.counters()), clock.t)
    [summary] = [e for e in effects if isinstance(e, Emit)]
    assert summary.type == "daily_summary"
    assert summary.data == closed.as_dict()
    assert (summary.data["walk_ins"], summary.data["people_helped"], summary.data["date"]) == \
        (1, 1, "2025-03-31")


def test_unsummarised_lists_days_missed_while_the_kiosk_was_off(tmp_path: Path) -> None:
    clock = FakeClock(at(TPE, 2025, 4, 3, 7))
    with DailyStats(tmp_path, clock=clock, tz=TPE) as stats:
        stats.record("clue", {}, test=False, ts=at(TPE, 2025, 3, 31, 12))
        stats.record("duty_on", {"volunteer": "V1"}, test=False, ts=at(TPE, 2025, 4, 1, 23))
        stats.record("clue", {}, test=False)  # today: not listed
        assert stats.unsummarised() == ["2025-03-31", "2025-04-01", "2025-04-02"]
        assert [stats.close_day(d).duty_seconds for d in stats.unsummarised()] == \
            [0, pytest.approx(HOUR), pytest.approx(24 * HOUR)]
        assert stats.unsummarised() == []


def test_next_midnight_across_dst_changes(tmp_path: Path) -> None:
    with DailyStats(tmp_path, tz=LDN) as stats:
        spring = at(LDN, 2025, 3, 30)
        assert stats.next_midnight(at(LDN, 2025, 3, 29, 12)) == spring
        assert stats.next_midnight(spring) - spring == 23 * HOUR  # exactly at midnight: the next one
        assert stats.next_midnight(at(LDN, 2025, 3, 30, 12)) == at(LDN, 2025, 3, 31)
        autumn = at(LDN, 2025, 10, 26)
        assert stats.next_midnight(autumn + HOUR) - autumn == 25 * HOUR
        assert stats.next_midnight(autumn - 1) == autumn


def test_errors_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "stats.db").write_bytes(b"this is not a database, it is a sandwich" * 100)
    with pytest.raises(EventLogError, match=re.escape(str(tmp_path / "stats.db"))) as info:
        DailyStats(tmp_path, tz=TPE)
    assert isinstance(info.value, (SafehouseError, OSError))
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(EventLogError, match=re.escape(str(blocked / "stats.db"))):
        DailyStats(blocked, tz=TPE)
