"""The power-cut loop (bench/powercut.py): its schedule, its damage, and a short loop as a test.

The full loop is `make powercut` (100 trials, about 10 minutes); this one is five trials of a
seed whose schedule has every kind of damage early, with the same verdict. It needs root for
the tmpfs behind state_dir: CI runs as root.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from bench.powercut import run
from bench.powercut_damage import HOSTILE, Planted, garble_lease, plant
from bench.powercut_plan import BETWEEN, plan
from safehouse.services.alarm_spool import PREFIX
from safehouse.services.seq_lease import SeqLease
from tests.rig.availability import require_tool, unavailable

SMOKE_SEED, SMOKE_TRIALS = 19, 5
ROOT = "safehouse/v1/chaos/SH-CHAOS-0001/"


def test_a_seed_replays_the_same_trials_and_another_seed_does_not() -> None:
    assert plan(7, 30, HOSTILE) == plan(7, 30, HOSTILE)
    assert plan(7, 30, HOSTILE) != plan(8, 30, HOSTILE)


def test_a_hundred_trials_bring_every_kind_of_damage_and_the_double_fault() -> None:
    trials = plan(1, 100, HOSTILE)
    assert {k for t in trials for k in t.between} == set(BETWEEN)
    assert {k for t in trials for k in t.hostile} == set(HOSTILE)
    assert any({"wal_lost", "lease_garbled"} <= set(t.between) for t in trials)  # issue 18, item 3
    assert trials[0].between == ()  # the first daemon starts on a fresh world
    for t in trials:
        assert [s.kind for s in t.people][::2] == ["press"] * (len(t.people) // 2)
        assert all(s.at < t.kill_at for s in t.people if s.kind == "press")
        assert ("disk_full" in t.between) + ("disk_freed" in t.between) < 2


def test_the_disk_is_freed_only_once_it_was_filled() -> None:
    full = False
    for t in plan(3, 200, HOSTILE):
        assert ("disk_freed" in t.between) <= full and ("disk_full" in t.between) <= (not full)
        full = (full or "disk_full" in t.between) and "disk_freed" not in t.between


def test_leaving_a_kind_out_keeps_the_rest_of_the_schedule() -> None:
    every, without = plan(1, 60, HOSTILE), plan(1, 60, HOSTILE, without={"wal_lost", "not_json"})
    for a, b in zip(every, without, strict=True):
        assert (a.people, a.broker, a.kill_at) == (b.people, b.broker, b.kill_at)
        assert b.hostile == tuple(k for k in a.hostile if k != "not_json")
        assert b.between == tuple(k for k in a.between if k != "wal_lost" and (k != "hostile" or b.hostile))


def test_the_smoke_trials_bring_every_kind_of_damage_early() -> None:
    trials = plan(SMOKE_SEED, SMOKE_TRIALS, HOSTILE)
    assert {"wal_lost", "lease_garbled", "disk_full", "hostile"} <= {k for t in trials for k in t.between}
    assert len({k for t in trials for k in t.hostile}) >= 6
    assert sum(1 for t in trials if t.broker) >= 3


def test_a_garbled_lease_is_unreadable_and_its_runtime_copy_is_gone(tmp_path: Path) -> None:
    state, runtime = tmp_path / "state", tmp_path / "run"
    SeqLease([state, runtime]).cover(5)
    garble_lease(state, runtime, random.Random(1))
    assert not (runtime / "seq.lease").exists()
    lease = SeqLease([state])
    assert not lease.found and lease.unreadable == [state / "seq.lease"]


def test_every_hostile_kind_is_planted_where_the_kiosk_looks_and_bait_is_watched(tmp_path: Path) -> None:
    runtime, bait = tmp_path / "run", tmp_path / "bait"
    runtime.mkdir()
    bait.mkdir()
    (runtime / "seq.lease").write_bytes(b"\0" * 64)
    planted = Planted(bait)
    plant(HOSTILE, runtime, ROOT, "SH-CHAOS-0001", "chaos", "before trial 1", planted, random.Random(2))
    spools = sorted(runtime.glob(PREFIX + "*.json"))
    assert len(planted.events) == len(HOSTILE) and len(spools) == 8  # two kinds link the lease, the ids
    assert all(p.name[len(PREFIX):-5] in planted.events for p in spools)
    for link in [p for p in runtime.iterdir() if p.is_symlink()]:
        assert link.resolve().parent == bait.resolve()  # outside the runtime folder
    assert {p.name for p in runtime.iterdir() if p.is_symlink()} >= {"seq.lease", "command_ids.db"}
    texts = {p.read_bytes() for p in spools if not p.is_symlink()}
    assert any(b"\\ud800" in t for t in texts) and any(b"\xff" in t for t in texts)
    foreign = [json.loads(t) for t in texts if b"SH-OTHER-0001/events" in t]
    assert foreign and json.loads(foreign[0]["payload"])["device_id"] == "SH-OTHER-0001"
    assert planted.touched() == []
    victim = next(iter(planted.bait))
    os.chmod(victim, 0o600)  # what a kiosk following a link to a store does to its target
    assert planted.touched() == [(planted.bait[victim][2], f"{victim.name}: mode changed")]


@pytest.mark.timeout(420)
def test_a_short_power_cut_loop_loses_nothing_reuses_no_seq_and_trusts_no_planted_file() -> None:
    require_tool("mosquitto")
    require_tool("socat")
    if os.geteuid() != 0:
        unavailable("the power-cut loop mounts a tmpfs for state_dir: it needs root")
    passed, table = run(SMOKE_SEED, SMOKE_TRIALS, drain=90.0)
    print(table)
    assert "trials (daemon lives ended by kill -9)" in table
    assert passed, table
