"""The unsent-alarm folder (services/alarm_spool.py, services/event_check.py) on real files: what
is read back is an alarm of this kiosk or is set aside with a reason word, never followed
through a link, never blocking, never deleted."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from safehouse.device.core.events import Event
from safehouse.services import alarm_spool
from safehouse.services.alarm_spool import AlarmSpool
from safehouse.services.event_check import Expected

EXPECTED = Expected("SH-1", "p1", frozenset({"panic", "duress", "storage_damaged"}), max_seq=100)


def alarm(seq: int = 7, **changes: Any) -> Event:
    fields = {"event_id": str(uuid.uuid4()), "seq": seq, "device_id": "SH-1", "precinct": "p1",
              "type": "panic", "code": 120, "ts": "2026-01-02T03:04:05.678Z", "clock_synced": True,
              "mono": 12.5, "boot_id": "b", "test": False, "data": {"source": "button"}, **changes}
    return Event(**fields)


def test_a_kept_alarm_is_read_back_as_written_and_its_file_holds_no_topic(tmp_path: Path) -> None:
    spool = AlarmSpool(tmp_path)
    event = alarm()
    spool.keep(event.event_id, event.to_json().encode())
    kept = spool.path_of(event.event_id)
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and "topic" not in json.loads(kept.read_text())
    assert AlarmSpool(tmp_path).read_back(EXPECTED) == [event]
    spool.drop(event.event_id)
    assert list(tmp_path.iterdir()) == []


def bad_files(tmp_path: Path) -> dict[str, str]:
    """name -> the reason word each should be refused with."""
    good = alarm()
    wanted: dict[str, str] = {}

    def put(event_or_text: Event | str, reason: str, *, event_id: str | None = None) -> None:
        eid = event_id or (event_or_text.event_id if isinstance(event_or_text, Event) else str(uuid.uuid4()))
        payload = event_or_text.to_json() if isinstance(event_or_text, Event) else event_or_text
        name = f"unsent-alarm-{eid}.json"
        (tmp_path / name).write_text(json.dumps({"event_id": eid, "payload": payload}))
        wanted[name] = reason

    put(alarm(seq=101), "bad_seq")  # above what the lease has issued
    put(alarm(seq=0), "bad_seq")
    put(json.dumps({**json.loads(good.to_json()), "seq": True}), "bad_seq")
    put(alarm(precinct="p2"), "other_kiosk")
    put(alarm(type="resolved"), "bad_type")
    put(alarm(event_id="not-a-uuid"), "bad_event_id")
    put(alarm(mono=float("inf")), "bad_field")  # json.dumps writes Infinity
    put(json.dumps({**json.loads(good.to_json()), "extra": 1}), "bad_field")
    put("[" * 5000, "too_deep")
    put(alarm(), "bad_event_id", event_id=str(uuid.uuid4()))  # the name names another event
    (tmp_path / "unsent-alarm-fifo.json").unlink(missing_ok=True)
    os.mkfifo(tmp_path / "unsent-alarm-fifo.json")
    wanted["unsent-alarm-fifo.json"] = "not_a_file"
    (tmp_path / "unsent-alarm-big.json").write_bytes(b" " * (alarm_spool.MAX_BYTES + 1))
    wanted["unsent-alarm-big.json"] = "too_large"
    return wanted


def test_every_kind_of_bad_file_is_set_aside_with_its_reason_and_reported(tmp_path: Path) -> None:
    wanted = bad_files(tmp_path)
    good = alarm(seq=3)
    spool = AlarmSpool(tmp_path)
    spool.keep(good.event_id, good.to_json().encode())
    assert spool.read_back(EXPECTED) == [good]
    got = {d.file: d.reason.split(":")[0] for d in spool.damage}
    assert got == wanted
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quarantine", spool.path_of(good.event_id).name]
    assert len(list((tmp_path / "quarantine").iterdir())) == len(wanted)
    assert all(d.quarantined is not None and d.quarantined.parent.name == "quarantine" for d in spool.damage)


def test_a_link_in_place_of_quarantine_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    spool_dir = tmp_path / "run"
    spool_dir.mkdir()
    (spool_dir / "quarantine").symlink_to(elsewhere)
    (spool_dir / "unsent-alarm-x.json").write_text("{")
    spool = AlarmSpool(spool_dir)
    assert spool.read_back(EXPECTED) == []
    assert list(elsewhere.iterdir()) == []  # nothing moved out of the folder
    [hidden] = [p for p in spool_dir.iterdir() if p.name.startswith(".")]
    assert hidden.name.startswith(".unsent-alarm-x.json.not_json-") and spool.damage[0].quarantined == hidden
    assert AlarmSpool(spool_dir).read_back(EXPECTED) == []  # never read again


def test_a_complete_temp_file_left_by_a_crash_before_its_rename_is_taken_back(tmp_path: Path) -> None:
    event = alarm()
    temp = tmp_path / f".unsent-alarm-{event.event_id}.json.0a1b2c3d.tmp"
    temp.write_text(json.dumps({"event_id": event.event_id, "payload": event.to_json()}))
    assert AlarmSpool(tmp_path).read_back(EXPECTED) == [event]
    assert [p.name for p in tmp_path.iterdir()] == [f"unsent-alarm-{event.event_id}.json"]


def test_a_flood_of_planted_files_keeps_only_the_newest_set_aside(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alarm_spool, "KEEP", 5)
    for n in range(12):
        (tmp_path / f"unsent-alarm-{n:02d}.json").write_text("x")
    spool = AlarmSpool(tmp_path)
    assert spool.read_back(EXPECTED) == [] and len(spool.damage) == 12
    assert len(list((tmp_path / "quarantine").iterdir())) == 5


def test_a_broker_refusal_sets_the_file_aside_without_a_damage_report(tmp_path: Path) -> None:
    event = alarm()
    spool = AlarmSpool(tmp_path)
    spool.keep(event.event_id, event.to_json().encode())
    moved = spool.set_aside(spool.path_of(event.event_id).name, "refused", "Not authorized", report=False)
    assert moved is not None and moved.exists() and spool.damage == []
    assert AlarmSpool(tmp_path).read_back(EXPECTED) == []
