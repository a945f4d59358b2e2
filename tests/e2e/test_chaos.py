"""The chaos run (bench/chaos.py) as a test: a short seeded run must lose and reorder nothing.

The full run is `make chaos` (3 minutes); this one is ~45 s of the same faults, all seven
kinds, with the same judge. It needs root for the tmpfs behind state_dir: CI runs as root.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench.chaos import run
from bench.chaos_plan import FAULTS, describe, plan
from tests.rig.availability import require_tool, unavailable

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
