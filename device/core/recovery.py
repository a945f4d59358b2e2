"""Pick up an alarm that was still open when the daemon died (power cut, kill -9, watchdog).

The outbox keeps every event, so the open alarm — a ``panic`` with no ``resolved`` after
it — can be rebuilt at start-up: the light flashes again, the chime summons the volunteer,
the keypad can acknowledge it and the precinct's ``cmd/ack`` finds it. Without this, a crash
in the middle of an alarm would leave a person in danger looking at the plain 24-hour sign.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from safehouse.device.core.events import Event
from safehouse.device.core.state import Alarm, Phase


def recover_alarm(events: Sequence[Event], *, boot_id: str, mono: float, wall: float,
                  ack_timeout: float) -> Alarm | None:
    """The alarm left open by the last run, rebuilt from its events (oldest first), or None."""
    open_alarm: Event | None = None
    followers: list[Event] = []
    for event in events:
        if event.type == "panic":
            open_alarm, followers = event, []
        elif open_alarm is not None and event.data.get("alarm_id") == open_alarm.event_id:
            if event.type == "resolved":
                open_alarm, followers = None, []
            else:
                followers.append(event)
    if open_alarm is None:
        return None
    started = _started(open_alarm, boot_id=boot_id, mono=mono, wall=wall)
    phase, acked_by, help_coming = Phase.ACTIVE, None, False
    for event in followers:
        if event.type == "escalated" and phase is Phase.ACTIVE:
            phase = Phase.ESCALATED
        elif event.type == "ack":
            phase, acked_by = Phase.ACKNOWLEDGED, str(event.data.get("volunteer"))
        elif event.type == "help_coming":
            help_coming = True
    deadline = started + ack_timeout if phase is Phase.ACTIVE else None
    return Alarm(event_id=open_alarm.event_id, test=open_alarm.test, started=started, phase=phase,
                 ack_deadline=deadline, help_coming=help_coming, acknowledged_by=acked_by)


def _started(panic: Event, *, boot_id: str, mono: float, wall: float) -> float:
    """The press on this run's monotonic clock: exact within the same boot, from wall time
    otherwise when the clock was synchronised, else taken as now (never in the future)."""
    if panic.boot_id == boot_id:
        return min(panic.mono, mono)
    if panic.clock_synced:
        age = wall - datetime.fromisoformat(panic.ts.replace("Z", "+00:00")).timestamp()
        return mono - max(0.0, age)
    return mono
