"""decide() with a fake clock: each test is one thing a citizen, volunteer or precinct would see."""

from __future__ import annotations

import json
import uuid
from typing import Any

from safehouse.device.core.alarm import decide, next_deadline
from safehouse.device.core.effects import Effect, Emit, Reject, SetLight, SetSound
from safehouse.device.core.inputs import (
    ButtonChanged,
    Input,
    LampChanged,
    PrecinctCommand,
    ResolveRequested,
    TamperChanged,
    TestAlarmRequested,
    Tick,
    VolunteerAck,
)
from safehouse.device.core.state import CoreState, Phase, Policy, initial_state

RUN = uuid.UUID("00000000-0000-4000-8000-000000000001")
WALL = 1_800_000_000.0


def precinct_ack(command_id: str, event_id: str) -> PrecinctCommand:
    """The precinct's cmd/ack for ``event_id``, fresh and well formed."""
    body = {"id": command_id, "ts": "2027-01-15T08:00:00Z", "event_id": event_id}
    return PrecinctCommand("ack", json.dumps(body).encode(), False, WALL, True)


class Kiosk:
    """Drives decide() like the core loop does, collecting effects, with a hand-moved clock."""

    def __init__(self, **policy: Any) -> None:
        self.state: CoreState = initial_state(Policy(**policy), RUN)
        self.now = 1000.0
        self.effects: list[Effect] = []

    def feed(self, inp: Input, at: float | None = None) -> list[Effect]:
        if at is not None:
            self.now = at
        self.state, effects = decide(self.state, inp, self.now)
        self.effects += effects
        return effects

    def wait(self, seconds: float) -> list[Effect]:
        return self.feed(Tick(), self.now + seconds)

    def press(self) -> list[Effect]:
        out = self.feed(ButtonChanged(True))
        return out + self.feed(ButtonChanged(False), self.now + 0.2)

    def events(self, type_: str | None = None) -> list[Emit]:
        return [e for e in self.effects if isinstance(e, Emit) and (type_ is None or e.type == type_)]


def test_press_lights_the_alarm_first_then_records_a_panic_event() -> None:
    k = Kiosk()
    out = k.feed(ButtonChanged(True))
    assert out[0] == SetLight("alarm") and out[1] == SetSound("chime")  # the volunteer is summoned
    panic = out[2]
    assert isinstance(panic, Emit) and panic.type == "panic" and panic.code == 120 and not panic.test
    assert k.state.alarm is not None and k.state.alarm.phase is Phase.ACTIVE


def test_repress_is_counted_on_the_alarm_not_a_new_alarm() -> None:
    k = Kiosk()
    for _ in range(5):
        k.press()
    assert len(k.events("panic")) == 1
    assert k.state.alarm is not None and k.state.alarm.presses == 5


def test_unacknowledged_alarm_escalates_exactly_at_ack_timeout() -> None:
    k = Kiosk(ack_timeout=60)
    k.press()
    start = k.state.alarm.started  # type: ignore[union-attr]
    assert next_deadline(k.state) == start + 60
    k.feed(Tick(), start + 59.9)
    assert k.events("escalated") == []
    k.feed(Tick(), start + 60)
    [esc] = k.events("escalated")
    assert esc.data["alarm_id"] == k.events("panic")[0].event_id
    assert k.state.alarm.phase is Phase.ESCALATED  # type: ignore[union-attr]
    k.wait(600)
    assert len(k.events("escalated")) == 1


def test_volunteer_ack_then_resolve_returns_to_the_beacon() -> None:
    k = Kiosk()
    k.press()
    k.wait(12.5)
    out = k.feed(VolunteerAck("v042"))
    assert SetLight("acknowledged") in out
    [ack] = k.events("ack")
    assert ack.data["volunteer"] == "v042" and ack.data["time_to_ack_s"] == 12.7  # 0.2 s press + 12.5 s
    out = k.feed(ResolveRequested("assistance", by="v042"))
    assert out[0] == SetLight("beacon")
    [done] = k.events("resolved")
    assert done.data["outcome"] == "assistance" and done.data["acknowledged_by"] == "v042"
    assert k.state.alarm is None
    assert k.wait(1000) == []  # nothing left to escalate


def test_ack_after_escalation_is_still_accepted_and_says_so() -> None:
    k = Kiosk(ack_timeout=10)
    k.press()
    k.wait(30)
    k.feed(VolunteerAck("v1"))
    [ack] = k.events("ack")
    assert ack.data["escalated"] is True
    assert k.state.alarm.phase is Phase.ACKNOWLEDGED  # type: ignore[union-attr]


def test_precinct_ack_shows_help_coming_only_for_the_right_alarm() -> None:
    k = Kiosk()
    k.press()
    alarm_id = k.events("panic")[0].event_id
    out = k.feed(precinct_ack("c1", "not-this-one"))
    assert not any(isinstance(e, SetLight | Emit) for e in out)
    assert Reject("precinct_ack", "no active alarm with event_id not-this-one") in out
    out = k.feed(precinct_ack("c2", alarm_id))
    assert out[0] == SetLight("help_coming")
    k.feed(VolunteerAck("v1"))
    assert k.state.light == "help_coming"  # the citizen keeps seeing that help is coming


def test_test_alarm_is_marked_test_and_shows_the_test_pattern() -> None:
    k = Kiosk()
    out = k.feed(TestAlarmRequested("cli"))
    assert out[0] == SetLight("test")
    [ev] = k.events("panic")
    assert ev.test and ev.code == 601
    assert [type(e) for e in k.feed(TestAlarmRequested("cli"))] == [Reject]


def test_a_real_press_during_a_test_alarm_is_a_real_alarm() -> None:
    k = Kiosk()
    k.feed(TestAlarmRequested("cli"))
    k.press()
    panics = k.events("panic")
    assert [p.test for p in panics] == [True, False]
    assert k.events("resolved")[0].data["outcome"] == "superseded"
    assert k.state.light == "alarm"


def test_hold_trigger_ignores_short_presses_and_fires_after_hold_seconds() -> None:
    k = Kiosk(trigger="hold", hold_seconds=2.0)
    k.feed(ButtonChanged(True))
    k.feed(ButtonChanged(False), k.now + 1.5)
    assert k.events("panic") == []
    k.feed(ButtonChanged(True), k.now + 1)
    assert next_deadline(k.state) == k.now + 2.0
    k.wait(2.0)
    [panic] = k.events("panic")
    assert panic.data["trigger"] == "hold"


def test_a_stuck_button_is_one_fault_not_a_flood_and_its_release_a_restore() -> None:
    k = Kiosk(stuck_after=30)
    k.feed(ButtonChanged(True))
    k.wait(29)
    assert k.events("button_stuck") == []
    for _ in range(10):
        k.wait(30)
    [stuck] = k.events("button_stuck")
    assert stuck.code == 380
    assert len(k.events("panic")) == 1
    k.feed(ButtonChanged(False))
    assert [e.type for e in k.events()][-1] == "button_restored"


def test_tamper_open_and_close_are_contact_id_137() -> None:
    k = Kiosk()
    k.feed(TamperChanged(True))
    k.feed(TamperChanged(True))
    k.feed(TamperChanged(False))
    assert [(e.type, e.code) for e in k.events()] == [("tamper", 137), ("tamper_restored", 137)]


def test_a_dark_lamp_raises_lamp_fault_after_the_grace_period() -> None:
    k = Kiosk(lamp_grace=5.0)
    k.feed(LampChanged(True))
    k.feed(LampChanged(False))
    k.wait(4.9)
    assert k.events("lamp_fault") == []
    k.wait(0.1)
    assert len(k.events("lamp_fault")) == 1
    k.feed(LampChanged(True))
    assert len(k.events("lamp_restored")) == 1


def test_event_ids_are_unique_and_reproducible_from_the_run_id() -> None:
    a, b = Kiosk(), Kiosk()
    for k in (a, b):
        k.press()
        k.feed(VolunteerAck("v"))
        k.feed(ResolveRequested("false_alarm", "v"))
        k.press()
    ids = [e.event_id for e in a.events()]
    assert len(set(ids)) == len(ids) == 4
    assert ids == [e.event_id for e in b.events()]
