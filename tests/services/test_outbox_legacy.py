"""The old events.jsonl, read for its one-time take-over: in order, a torn tail left out."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from safehouse.device.core.events import Event
from safehouse.services.outbox_legacy import log_path, read_events


def event(n: int) -> Event:
    return Event(event_id=f"e{n}", seq=n, device_id="K", precinct="p", type="panic", code=120,
                 ts="2026-11-28T00:00:00.000Z", clock_synced=True, mono=float(n), boot_id="b",
                 test=False, data={"n": n})


def write_log(state_dir: Path, *lines: str) -> None:
    log_path(state_dir).write_text("".join(lines), encoding="utf-8")


def test_no_old_log_yields_nothing(tmp_path: Path) -> None:
    assert list(read_events(tmp_path)) == []


def test_events_come_back_in_order_as_they_were_written(tmp_path: Path) -> None:
    write_log(tmp_path, *(event(n).to_json() + "\n" for n in (1, 2, 3)), "\n")
    assert list(read_events(tmp_path)) == [event(1), event(2), event(3)]


def test_a_torn_last_line_is_left_out(tmp_path: Path) -> None:
    write_log(tmp_path, event(1).to_json() + "\n", event(2).to_json() + "\n",
              '{"seq": 3, "event_id": "torn", "dev')  # power cut mid-write: never acknowledged
    assert [e.seq for e in read_events(tmp_path)] == [1, 2]


def test_an_unreadable_line_is_logged_and_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_log(tmp_path, event(1).to_json() + "\n", "not json\n", event(2).to_json() + "\n")
    with caplog.at_level(logging.ERROR):
        assert [e.seq for e in read_events(tmp_path)] == [1, 2]
    assert "skipping unreadable line" in caplog.text
