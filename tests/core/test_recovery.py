"""Rebuilding the alarm left open by a crashed run, from its events."""

from __future__ import annotations

from typing import Any

from safehouse.device.core.events import Event
from safehouse.device.core.recovery import recover_alarm
from safehouse.device.core.state import Phase


def ev(seq: int, type_: str, *, boot: str = "b1", mono: float = 100.0, synced: bool = True,
       ts: str = "2026-11-28T12:00:00.000Z", **data: Any) -> Event:
    return Event(event_id=f"e{seq}", seq=seq, device_id="K", precinct="p", type=type_, code=None, ts=ts,
                 clock_synced=synced, mono=mono, boot_id=boot, test=False, data=data)


WALL = 1_795_867_260.0  # 2026-11-28T12:01:00Z


def test_no_open_alarm_when_the_last_one_was_resolved() -> None:
    events = [ev(1, "panic"), ev(2, "ack", alarm_id="e1", volunteer="v"), ev(3, "resolved", alarm_id="e1")]
    assert recover_alarm(events, boot_id="b1", mono=200.0, wall=WALL, ack_timeout=60) is None


def test_an_open_alarm_keeps_its_phase_and_press_time_within_the_same_boot() -> None:
    events = [ev(1, "panic", mono=150.0), ev(2, "help_coming", alarm_id="e1"),
              ev(3, "duty_on", volunteer="v")]
    alarm = recover_alarm(events, boot_id="b1", mono=170.0, wall=WALL, ack_timeout=60)
    assert alarm is not None and alarm.event_id == "e1" and alarm.phase is Phase.ACTIVE
    assert alarm.started == 150.0 and alarm.ack_deadline == 210.0 and alarm.help_coming


def test_after_a_reboot_the_age_comes_from_synced_wall_time_else_now() -> None:
    events = [ev(1, "panic", boot="old"), ev(2, "ack", alarm_id="e1", volunteer="v7")]
    alarm = recover_alarm(events, boot_id="new", mono=10.0, wall=WALL, ack_timeout=60)
    assert alarm is not None and alarm.started == -50.0  # pressed 60 s before this wall time
    assert alarm.phase is Phase.ACKNOWLEDGED and alarm.acknowledged_by == "v7" and alarm.ack_deadline is None
    unsynced = recover_alarm([ev(1, "panic", boot="old", synced=False)], boot_id="new", mono=10.0,
                             wall=WALL, ack_timeout=60)
    assert unsynced is not None and unsynced.started == 10.0
