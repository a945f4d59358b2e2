"""The effect runner runs every effect of a decision even when one of them raises.

A command's result publish that raised (a surrogate the uplink could not encode) once stopped
the effects after it: the precinct's ack switched the light box to "help is coming", but the
``help_coming`` event was never written or sent. Here a real outbox records what the precinct
would get, and the parts that fail are the ones the runner talks to.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safehouse.device.core.effects import Capture, Emit, Reply, SetLight
from safehouse.device.runtime.effect_runner import EffectRunner, NoBuzzer
from safehouse.device.runtime.event_writer import EventWriter, event_fields
from safehouse.services.outbox import Outbox
from safehouse.services.topics import Topics
from tests.rig.clock import FakeClock


class Broken(Exception):
    """What a failing part raises."""


class Parts:
    """Every port the runner takes; ``failing`` names the ones that raise."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing
        self.light: list[str] = []
        self.sent: list[str] = []
        self.captured: list[str] = []

    def _maybe(self, what: str) -> None:
        if what in self.failing:
            raise Broken(what)

    def play(self, name: str) -> None:
        self._maybe("light")
        self.light.append(name)

    def wake(self, urgent: bool = False) -> None: ...

    def send(self, topic: str, payload: bytes, correlation: bytes | None = None) -> None:
        self._maybe("uplink")
        self.sent.append(topic)

    def request(self, alarm_id: str, test: bool, at: float) -> None:
        self._maybe("capture")
        self.captured.append(alarm_id)

    def rollcall(self, on: bool) -> None: ...
    def check(self, entry: int, pin: str, action: str) -> None: ...
    def keep(self, failures: int, lockouts: int, locked_until: float | None, locked_s: float) -> None: ...
    def remember(self, command_id: str, ts: float) -> None: ...


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    box = Outbox(tmp_path)
    yield box  # type: ignore[misc]
    box.close()


def runner(outbox: Outbox, parts: Parts) -> EffectRunner:
    clock, topics = FakeClock(), Topics("p", "SH-RUN")
    writer = EventWriter(outbox, topics.events, event_fields(clock, device_id="SH-RUN", precinct="p",
                                                            boot_id="b"))
    return EffectRunner(writer=writer, light=parts, clock=clock, topics=topics, device_id="SH-RUN",
                        precinct="p", messenger=parts, capturer=parts, buzzer=NoBuzzer(), indicator=parts,
                        pin_checker=parts, lockouts=parts, command_ids=parts,
                        selftester=lambda _source: None)


REPLY = Reply(command="ack", id="c1", ok=True, error=None, result={"alarm": "a1"})


@pytest.mark.parametrize("failing", [{"uplink"}, {"light"}, {"uplink", "light", "capture"}])
def test_an_effect_that_raises_never_stops_the_events_after_it(outbox: Outbox, failing: set[str]) -> None:
    parts = Parts(failing)
    run = runner(outbox, parts)
    effects = [SetLight("help_coming"), REPLY, Emit("e-help", "help_coming", 1120, data={"by": "precinct"}),
               Capture("a1", False, 0.0), Emit("e-after", "ack_sent", None)]
    assert run(effects) is True  # durable: both events are on disk
    assert [e.event_id for e in outbox.events()] == ["e-help", "e-after"]
    assert run.rejections["effect_failed"] == ("uplink" in failing)  # the light box logs its own
    assert parts.captured == ([] if "capture" in failing else ["a1"])


def test_nothing_fails_nothing_is_counted(outbox: Outbox) -> None:
    parts = Parts(set())
    run = runner(outbox, parts)
    assert run([SetLight("alarm"), REPLY, Emit("e1", "panic", 120)]) is True
    assert parts.light == ["alarm"] and parts.sent == ["safehouse/v1/p/SH-RUN/cmd/ack/result"]
    assert run.rejections["effect_failed"] == 0 and [e.type for e in outbox.events()] == ["panic"]
