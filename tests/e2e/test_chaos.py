"""The chaos run (bench/chaos.py) as a test: a short seeded run must lose and reorder nothing.

The full run is `make chaos` (3 minutes); this one is ~45 s of the same faults, all seven
kinds, with the same judge. It needs root for the tmpfs behind state_dir: CI runs as root.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.chaos import run
from bench.chaos_order import uncovered
from bench.chaos_plan import FAULTS, Step, describe, plan, throwaway_pin
from bench.chaos_precinct import Verdict, judge
from tests.rig.availability import require_tool, unavailable
from tests.rig.mqtt_message import Message

SHORT = 45.0
SHORT_GAP = (1.5, 5.0)


def _schedule(seed: int) -> str:
    people, faults = plan(seed, 180)
    return describe(sorted(people + faults))


def test_a_seed_replays_the_same_schedule_and_another_seed_does_not() -> None:
    assert _schedule(7) == _schedule(7)
    assert _schedule(7) != _schedule(8)


@pytest.mark.parametrize("seed", range(1, 30))
def test_every_fault_is_mended_before_the_end_and_one_resource_breaks_one_way_at_a_time(seed: int) -> None:
    _people, faults = plan(seed, 180)
    open_since: dict[str, float] = {}
    for step in faults:
        assert 0 < step.at < 180
        kind = step.kind.removeprefix("end_")
        resource = FAULTS[kind][0]
        if step.kind.startswith("end_"):
            assert open_since.pop(resource) <= step.at
        elif FAULTS[kind][2] > 0:
            assert resource not in open_since, f"{kind} at {step.at} while {resource} is still broken"
            open_since[resource] = step.at
    assert not open_since


def test_the_short_schedule_breaks_every_kind_of_thing() -> None:
    _people, faults = plan(3, SHORT, fault_gap=SHORT_GAP)
    assert {s.kind for s in faults if not s.kind.startswith("end_")} == set(FAULTS)


@pytest.mark.timeout(300)
def test_a_short_chaos_run_loses_nothing_and_reorders_nothing(tmp_path: Path) -> None:
    require_tool("mosquitto")
    require_tool("socat")
    if os.geteuid() != 0:
        unavailable("the chaos run mounts a tmpfs for state_dir: it needs root")
    passed, verdict, table = run(3, SHORT, drain=90.0, fault_gap=SHORT_GAP)
    print(table)
    assert verdict.alarms_accepted >= 3, table  # the citizen did get through, repeatedly
    assert verdict.alarms_delivered == verdict.alarms_accepted, table
    assert not verdict.lost_alarms and not verdict.lost_events, table
    assert verdict.out_of_order == 0 and not verdict.conflicts, table
    assert passed, table


# --- the verdict: what the contract promises, judged on what the precinct received -----------

ROOT = "safehouse/v1/chaos/SH-CHAOS-0001/"


def event(seq: int, type_: str = "walk_in", *, mono: float | None = None, eid: str = "",
          data: dict[str, object] | None = None, device: str = "SH-CHAOS-0001") -> dict[str, object]:
    return {"schema": "safehouse/v1/event", "event_id": eid or f"e{seq}", "seq": seq, "device_id": device,
            "precinct": "chaos", "type": type_, "code": None, "ts": "2026-11-28T00:00:00.000Z",
            "clock_synced": True, "mono": float(seq) if mono is None else mono, "boot_id": "b1",
            "test": False, "data": data or {}}


def received(*events: dict[str, object] | bytes, topic: str = ROOT + "events") -> list[Message]:
    return [Message(topic, e if isinstance(e, bytes) else json.dumps(e).encode(), 1, False, float(i), None)
            for i, e in enumerate(events)]


def verdict(messages: list[Message], *, durable: set[str] = frozenset(),  # type: ignore[assignment]
            accepted: tuple[str, ...] = ()) -> Verdict:
    return judge(messages, ROOT, dict.fromkeys(accepted, 0.0), len(accepted), [], durable=set(durable))


def test_an_alarm_sent_from_memory_may_arrive_ahead_of_older_events_and_nothing_else_may() -> None:
    ahead = [event(1), event(4, "panic"), event(2, "ack"), event(3, "evidence")]
    v = verdict(received(*ahead), accepted=("e4",))
    assert v.passed and v.out_of_order == 0 and v.behind_memory == 2, v.failures
    report_ahead = [event(1), event(4, "storage_damaged", data={"missing_seq": None}), event(2), event(3)]
    assert verdict(received(*report_ahead)).passed
    v = verdict(received(event(1), event(3, "resolved"), event(2, "ack")))  # not an alarm: never ahead
    assert [f.text for f in v.reorders] == ["seq 2 (ack e2) arrived after seq 3 (e3)"]
    v = verdict(received(event(1), event(3, "panic"), event(2)), accepted=("e3",), durable={"e3"})
    assert v.out_of_order == 1 and "on disk" in v.reorders[0].text  # a stored alarm drains in order


def test_a_stored_alarm_may_go_ahead_only_of_what_a_salvage_held_back() -> None:
    """From the damage (seq_high_water 100) to its report (seq 103) the outbox sends nothing; an
    alarm decided meanwhile goes out from memory, ahead of the salvaged events and of the ones
    written in that while (found by the power-cut loop: storage_full and resolved, behind it)."""
    report = event(103, "storage_damaged", data={"missing_seq": [3, 100], "seq_high_water": 100})
    held = [event(1), event(102, "panic"), event(2), event(101, "storage_full"), report]
    assert verdict(received(*held), accepted=("e102",), durable={"e102"}).passed
    later = [event(1), event(102, "panic"), event(2), report, event(105, "panic"), event(104)]
    v = verdict(received(*later), accepted=("e102", "e105"), durable={"e102", "e105"})
    assert [r.event_ids for r in v.reorders] == [("e104", "e105")]
    before = [event(1), event(3, "panic"), event(2), report]  # decided before the damage
    assert verdict(received(*before), accepted=("e3",), durable={"e3"}).out_of_order == 1


def test_a_seq_issued_after_a_higher_one_is_backwards_whatever_the_arrival_order() -> None:
    """make chaos SEED=90417, one run in four: alarm 313, sent from memory, reached the precinct;
    two restarts later the kiosk issued seq 206 to a new alarm. By arrival alone that looked
    like an old event late behind an alarm from memory; by the kiosk's own clock it is new."""
    ran = [event(205, mono=5.0), event(313, "panic", mono=40.0), event(206, "panic", mono=58.0)]
    v = verdict(received(*ran), accepted=("e313", "e206"))
    assert [str(f) for f in v.backwards] == ["seq backwards: seq 206 (e206) was issued after seq 313 (e313)"]
    assert v.backwards[0].event_ids == ("e206", "e313") and not v.passed
    late = [event(205, mono=5.0), event(313, "panic", mono=40.0), event(206, mono=6.0)]
    assert verdict(received(*late), accepted=("e313",)).backwards == []  # old, only late


def test_every_gap_is_covered_by_a_storage_damaged_report() -> None:
    report = event(201, "storage_damaged", data={"missing_seq": [3, 200], "seq_high_water": 200})
    v = verdict(received(event(1), event(2), report, event(301), event(2**60)))
    assert v.reported_gaps == [(3, 200)]
    assert [(g.seqs, g.event_ids) for g in v.unreported_gaps] == [((202, 300), ("e301",)),
                                                                   ((302, 2**60 - 1), (f"e{2**60}",))]
    assert "unreported gap: seq 202-300 missing, not in any storage_damaged report" in map(str, v.failures)
    assert uncovered([(1, 10)], [(2, 3), (3, 5), (9, 20)]) == [(1, 1), (6, 8)]


def test_one_seq_never_names_two_events() -> None:
    v = verdict(received(event(1), event(2), event(2, eid="other"), event(2, eid="other")))
    assert [f.text for f in v.conflicts] == ["seq 2: e2 / other"] and not v.passed
    v = verdict(received(event(1), event(2), event(3, eid="e2")))
    assert [f.text for f in v.conflicts] == ["event e2: seq 2 / 3"] and not v.passed


def test_what_the_kiosk_must_never_send_fails_the_run_without_breaking_the_verdict() -> None:
    foreign = "safehouse/v1/other/SH-OTHER-0001/events"
    lone = json.dumps(event(3, eid="e3\udc00")).encode()  # valid JSON, not valid Unicode
    garbage = (b"\xff not json", b"[1]", json.dumps(event(2)).encode()[:-1], lone)
    messages = [*received(event(1)), *received(*garbage), *received(event(2, device="SH-OTHER-0001")),
                *received(event(7), topic=foreign)]
    v = verdict(messages)
    assert len(v.misplaced) == 6 and not v.passed, v.misplaced
    assert "lone surrogate" in v.misplaced[3].text
    assert any("SH-OTHER-0001" in m.text and "seq 2" in m.text for m in v.misplaced)
    assert all(m.at is not None for m in v.misplaced)  # traced by arrival time
    assert v.unreported_gaps == []  # the other kiosk's event is not one of this kiosk's seqs


def test_the_volunteer_pin_comes_from_the_seed_and_is_never_a_wrong_pin_of_the_schedule() -> None:
    people, _faults = plan(5, 180)
    wrong = {s.arg for s in people if s.kind == "wrong_pin"}
    assert throwaway_pin(5, people) == throwaway_pin(5, people) not in wrong
    pin = throwaway_pin(5, [])
    assert throwaway_pin(5, [Step(1.0, "wrong_pin", pin)]) != pin
