"""`safehouse stats`, through the real `safehouse` entry point (``main([...])``): the same numbers
whether the daemon is running (WAL in use) or stopped, today by default, a malformed date is a
usage error (2), no stats yet is a refusal (1). The counting itself: tests/services/test_stats.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from safehouse.device.cli.main import main
from safehouse.services.stats import COUNTERS, DailyStats
from tests.rig.clock import FakeClock, at
from tests.rig.kiosk_config import write_config

TPE = ZoneInfo("Asia/Taipei")  # UTC+8, no DST: the kiosk's zone in these tests
NOON = at(TPE, 2025, 3, 31, 12)


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`safehouse ARGV` in process: its exit code, stdout and stderr."""
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def kiosk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TZ", "Asia/Taipei")
    return write_config(tmp_path), tmp_path / "state"


def fill(stats: DailyStats, ts: float) -> None:
    stats.record("panic", {}, test=False, ts=ts)
    stats.record("panic", {}, test=True, ts=ts)
    stats.record("resolved", {"outcome": "assistance"}, test=False, ts=ts)
    stats.record("walk_in", {}, test=False, ts=ts)
    stats.record("resolved", {"outcome": "police"}, test=False, ts=ts)
    stats.record("duty_on", {"volunteer": "V1"}, test=False, ts=at(TPE, 2025, 3, 31, 10))
    stats.record("duty_off", {"volunteer": "V1"}, test=False, ts=at(TPE, 2025, 3, 31, 11, 30))


def test_cli_shows_the_same_numbers_with_the_daemon_running_or_stopped(
        kiosk: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, state = kiosk
    argv = ["--config", str(config), "stats", "--date", "2025-03-31"]
    with DailyStats(state, clock=FakeClock(at(TPE, 2025, 4, 1, 9)), tz=TPE) as stats:
        fill(stats, ts=NOON)
        stats.record("duty_on", {"volunteer": "V9"}, test=False, ts=at(TPE, 2025, 3, 31, 23))
        expected = stats.day("2025-03-31")
        code, out, _ = run_cli([*argv, "--json"], capsys)  # daemon "running": WAL in use
        assert code == 0
        view = json.loads(out)
        assert {k: view[k] for k in COUNTERS if k != "duty_seconds"} == \
            {k: getattr(expected, k) for k in COUNTERS if k != "duty_seconds"}
        assert view["duty_hours"] == pytest.approx(expected.duty_hours) == pytest.approx(2.5)  # V9 to 24:00
        assert (view["date"], view["summarised"], view["on_duty"]) == ("2025-03-31", False, ["V9"])
    assert not (state / "stats.db-wal").exists()
    code, out, _ = run_cli(argv, capsys)  # daemon stopped: an immutable snapshot
    assert code == 0
    lines = dict(re.findall(r"^ +(\S.*?\S) +(\S+)$", out, re.M))
    assert lines["alarms raised"] == "1"
    assert lines["test alarms"] == "1"
    assert lines["people helped"] == "2"
    assert lines["incidents handed to police"] == "1"
    assert lines["volunteer duty hours"] == "2.5"
    assert not (state / "stats.db-wal").exists() and not (state / "stats.db-shm").exists()


def test_cli_defaults_to_today(kiosk: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, state = kiosk
    with DailyStats(state, tz=TPE) as stats:
        stats.record("clue", {}, test=False)
        before = stats.day().date
        code, out, _ = run_cli(["--config", str(config), "stats", "--json"], capsys)
        after = stats.day().date  # the CLI's "today" is the kiosk's own day, read around the call
    assert code == 0
    shown = json.loads(out)
    assert shown["date"] in (before, after)  # a run across midnight sees either day, never another
    assert shown["clues"] == (1 if shown["date"] == before else 0)


@pytest.mark.parametrize("bad", ["2025-3-31", "31/03/2025", "2025-02-30", "today"])
def test_cli_refuses_a_malformed_date(kiosk: tuple[Path, Path], capsys: pytest.CaptureFixture[str],
                                      bad: str) -> None:
    config, state = kiosk
    DailyStats(state, tz=TPE).close()
    code, out, err = run_cli(["--config", str(config), "stats", "--date", bad], capsys)
    assert (code, out) == (2, "")
    assert "YYYY-MM-DD" in err and bad in err


def test_cli_without_stats_yet_says_so(kiosk: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    config, state = kiosk
    code, _, err = run_cli(["--config", str(config), "stats"], capsys)
    assert code == 1 and "no stats yet" in err
    assert not state.exists() or not any(state.iterdir())


def test_cli_refuses_the_last_calendar_day_without_a_traceback(kiosk: tuple[Path, Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """9999-12-31 is a date, but its day ends past the last one Python can hold (OverflowError)."""
    config, state = kiosk
    DailyStats(state, tz=TPE).close()
    code, out, err = run_cli(["--config", str(config), "stats", "--date", "9999-12-31"], capsys)
    assert (code, out) == (2, "")
    assert "9999-12-31" in err and "out of range" in err
