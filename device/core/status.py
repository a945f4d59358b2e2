"""What `safehouse status` shows: one snapshot a technician (or a test) can read at a glance."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from safehouse.device.core.state import CoreState


class _Runner(Protocol):
    @property
    def pending(self) -> int: ...
    @property
    def rejections(self) -> Mapping[str, int]: ...
    @property
    def last_seq(self) -> int: ...
    def storage_view(self) -> dict[str, object]: ...


def alarm_view(state: CoreState, now: float) -> dict[str, Any]:
    alarm = state.alarm
    if alarm is None:
        return {"state": "idle"}
    return {
        "state": alarm.phase.value,
        "event_id": alarm.event_id,
        "test": alarm.test,
        "presses": alarm.presses,
        "age_s": round(max(0.0, now - alarm.started), 3),
        "acknowledged_by": alarm.acknowledged_by,
        "help_coming": alarm.help_coming,
        "escalates_in_s": (round(max(0.0, alarm.ack_deadline - now), 3)
                           if alarm.ack_deadline is not None else None),
    }


def status_view(state: CoreState, runner: _Runner, static: Mapping[str, Any], *, light: str,
                uptime: float, now: float, link: Mapping[str, Any],
                outbox: Mapping[str, Any]) -> dict[str, Any]:
    """``light`` is what the light box is really playing, not what the core asked for."""
    return {
        **static,
        "uptime_s": round(uptime, 1),
        "alarm": alarm_view(state, now),
        "light": light,
        "link": dict(link),
        "pending_events": runner.pending,
        "storage": runner.storage_view(),
        "outbox": dict(outbox),
        "last_seq": runner.last_seq,
        "button": {"pressed": state.button.pressed, "stuck": state.button.stuck,
                   "trigger": state.policy.trigger},
        "tamper_open": state.tamper_open,
        "lamp": {"lit": state.lamp.lit, "fault": state.lamp.fault},
        "keypad": {"entry_length": len(state.keypad.entry), "rejected": state.keypad.rejected,
                   "lost": state.keypad_lost, "wrong_pins": state.keypad.failures,
                   "lockouts": state.keypad.lockouts, "noise": state.keypad.noisy_since is not None,
                   "locked_for_s": (round(max(0.0, state.keypad.locked_until - now), 1)
                                    if state.keypad.locked_until is not None else 0.0)},
        "on_duty": sorted(state.on_duty),
        "rollcall": ({"waiting_s": round(now - state.rollcall.started, 1),
                      "answer_within_s": round(max(0.0, state.rollcall.deadline - now), 1)}
                     if state.rollcall is not None else None),
        "rejections": dict(runner.rejections),
        "alarms_raised": state.alarms_raised,
        "light_override": state.override[0] if state.override else None,
        "neighbor_alerts": state.neighbor_alerts,
    }
