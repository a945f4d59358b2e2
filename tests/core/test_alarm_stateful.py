"""Hypothesis drives the alarm core with any order of presses, acks, resolves and waits.

Each step runs decide() and executes its effects through the real EffectRunner into a real
outbox, as the daemon does, so the invariants are checked on what the precinct would get.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from safehouse.device.core.alarm import decide, light_for, next_deadline
from safehouse.device.core.inputs import (
    ButtonChanged,
    Input,
    PrecinctCommand,
    ResolveRequested,
    TestAlarmRequested,
    Tick,
    VolunteerAck,
)
from safehouse.device.core.state import Phase, Policy, initial_state
from safehouse.device.runtime.effect_runner import EffectRunner, NoBuzzer
from safehouse.device.runtime.event_writer import EventWriter, event_fields
from safehouse.device.runtime.uplink_assembly import NoUplink
from safehouse.services.outbox import Outbox
from safehouse.services.topics import Topics
from tests.rig.clock import FakeClock

ACK_TIMEOUT = 60.0


class Light:
    def __init__(self) -> None:
        self.pattern = "beacon"

    def play(self, name: str) -> None:
        self.pattern = name


class Absent:
    """Every optional port the runner takes, doing nothing (capture, status LED, PIN checks,
    lockout and command-id stores): this machine checks the light and the outbox."""

    def request(self, alarm_id: str, test: bool, at: float) -> None: ...
    def rollcall(self, on: bool) -> None: ...
    def check(self, entry: int, pin: str, action: str) -> None: ...
    def keep(self, failures: int, lockouts: int, locked_until: float | None, locked_s: float) -> None: ...
    def remember(self, command_id: str, ts: float) -> None: ...


class AlarmMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="sh-hyp-"))
        self.log = Outbox(self.dir)
        self.clock = FakeClock()
        self.light = Light()
        topics = Topics("p", "SH-HYP")
        writer = EventWriter(self.log, topics.events,
                             event_fields(self.clock, device_id="SH-HYP", precinct="p", boot_id="b"))
        absent = Absent()
        self.runner = EffectRunner(writer=writer, light=self.light, clock=self.clock, topics=topics,
                                   device_id="SH-HYP", precinct="p", messenger=NoUplink(), capturer=absent,
                                   buzzer=NoBuzzer(), indicator=absent, pin_checker=absent, lockouts=absent,
                                   command_ids=absent, selftester=lambda _source: None)
        self.state = initial_state(Policy(ack_timeout=ACK_TIMEOUT, stuck_after=30.0), uuid.uuid4())
        self.open_alarms = 0
        self.commands = 0

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _feed(self, inp: Input) -> None:
        self.state, effects = decide(self.state, inp, self.clock.now)
        assert self.runner(effects)

    @rule(pressed=st.booleans())
    def button(self, pressed: bool) -> None:
        self._feed(ButtonChanged(pressed))

    @rule(seconds=st.floats(min_value=0.0, max_value=90.0))
    def time_passes(self, seconds: float) -> None:
        # the loop wakes at each deadline; a late wake-up must still fire it
        deadline = next_deadline(self.state)
        self.clock.advance(seconds)
        if deadline is not None and deadline <= self.clock.now:
            self._feed(Tick())

    @rule()
    def test_alarm(self) -> None:
        self._feed(TestAlarmRequested("hyp"))

    @rule(who=st.sampled_from(["v1", "v2"]))
    def volunteer_ack(self, who: str) -> None:
        self._feed(VolunteerAck(who))

    @precondition(lambda self: self.state.alarm is not None)
    @rule(right=st.booleans())
    def precinct_ack(self, right: bool) -> None:
        assert self.state.alarm is not None
        self.commands += 1  # the precinct's cmd/ack, fresh and with a new id each time
        body = {"id": f"c{self.commands}", "ts": datetime.fromtimestamp(self.clock.wall(), UTC).isoformat(),
                "event_id": self.state.alarm.event_id if right else "other"}
        self._feed(PrecinctCommand("ack", json.dumps(body).encode(), False, self.clock.wall(), True))

    @rule(outcome=st.sampled_from(["assistance", "false_alarm", "police", "bogus"]))
    def resolve(self, outcome: str) -> None:
        self._feed(ResolveRequested(outcome, "v1"))

    @invariant()
    def never_two_active_alarms(self) -> None:
        events = self.log.events()
        opened = sum(e.type == "panic" for e in events)
        closed = sum(e.type == "resolved" for e in events)
        assert opened - closed == (1 if self.state.alarm else 0)

    @invariant()
    def an_active_alarm_is_never_past_its_ack_timeout(self) -> None:
        alarm = self.state.alarm
        if alarm is not None and alarm.phase is Phase.ACTIVE:
            assert self.clock.now < alarm.started + ACK_TIMEOUT

    @invariant()
    def seq_strictly_increasing_and_ids_unique(self) -> None:
        events = self.log.events()
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert len({e.event_id for e in events}) == len(events)

    @invariant()
    def the_light_shows_the_state(self) -> None:
        assert self.light.pattern == light_for(self.state) == self.state.light


AlarmMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestAlarmLifecycle = AlarmMachine.TestCase
