"""`make powercut`: the real kiosk killed at random moments, trial after trial, while a
citizen presses and the broker flaps; between trials, power cuts and a failing card damage
its files.

Usage: python -m bench.powercut [--trials N] [--seed N] [--plan] [--keep]

Each trial starts the daemon (``safehouse run`` on simulated hardware, as in ``make chaos``),
lets a citizen press and a technician resolve, maybe stops the broker or swaps it for a black
hole, and ``kill -9``s the daemon at a seeded moment. Before the next start it may delete the
outbox's WAL, garble ``state/seq.lease`` and remove the lease's runtime copy, fill or free
``state_dir`` (a small tmpfs), and plant hostile files in the runtime folder
(``bench/powercut_damage.py``). At the end everything is mended, the kiosk drains, and the
precinct's record is judged against the contract (``bench/chaos_precinct.py``: no accepted
alarm lost, no seq naming two events, every seq gap in a ``storage_damaged`` report, nothing
out of order, nothing off the kiosk's topics), plus: no planted file trusted, no file behind a
planted link changed. Every failure is traced to the trial that made it. Exit status 1 when
anything failed. Needs root (the tmpfs), mosquitto and socat: ``make test`` installs them.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Collection
from pathlib import Path

from bench.chaos import People, run_steps, wait_drained
from bench.chaos_order import Finding
from bench.chaos_plan import Step, throwaway_pin
from bench.chaos_precinct import console, judge
from bench.chaos_world import DEVICE, PRECINCT, World, damage_outbox
from bench.powercut_damage import HOSTILE, NOT_JSON, Planted, garble_lease, plant
from bench.powercut_plan import BETWEEN, Trial, describe, plan
from bench.powercut_report import Lived, Outcome, faults_of, table
from safehouse.services.topics import Topics
from tests.rig.mqtt_message import Message
from tests.rig.subscriber import Subscriber

ROOT = Topics(PRECINCT, DEVICE).root
START_LIMIT = 20.0  # seconds of refused starts (one a second, as systemd) before the loop ends


def run(seed: int, trials: int, *, drain: float = 150.0, keep: bool = False,
        without: Collection[str] = ()) -> tuple[bool, str]:
    """The whole loop: (passed, the table); ``without``: kinds of damage left out of the plan."""
    schedule = plan(seed, trials, HOSTILE, without=without)
    folder = Path(tempfile.mkdtemp(prefix="powercut-", dir="/tmp"))
    planted = Planted(Path(tempfile.mkdtemp(prefix="powercut-bait-", dir="/tmp")))
    world = World(folder, seed=seed, pin=throwaway_pin(seed, []), capture=False)
    precinct: Subscriber | None = None
    errors: list[str] = []
    lived: list[Lived] = []
    between: Counter[str] = Counter()
    dead: list[Finding] = []  # the kiosk no longer starts: the loop ends there
    last_start = ""
    try:
        world.start_broker()
        precinct = console(world.broker)
        world.start_kiosk()
        world.start_limit = START_LIMIT
        people = People(world)
        for trial in schedule:
            if trial.index:
                _between(world, trial, planted, seed, between)
                last_start = f"trial {trial.index}'s start, which never answered"
                dead += _start(world, f"trial {trial.index} (started after: {faults_of(trial)})")
                if dead:
                    break
            lived.append(_live(world, people, trial, errors))
        world.heal(start=False)  # everything mended: broker up, disk freed
        if not dead:
            last_start = "the last start, once everything was mended"
            dead += _start(world, "once everything was mended")
        healed = time.monotonic()
        stored = wait_drained(world, precinct, ROOT, people.accepted, 0.0 if dead else drain)
        drained = time.monotonic() - healed
        received = precinct.messages()
        verdict = judge(received, ROOT, people.accepted, people.presses, stored, durable=people.durable)
        extra = (dead + _trusted(received, planted)
                 + [Finding("followed a link", text, (eid,)) for eid, text in planted.touched()])
        outcome = Outcome(seed, schedule, lived, verdict, extra, errors, between, world, people.records,
                          people.accepted, ROOT, received, stored, planted, drained, last_start)
        return verdict.passed and not extra and not errors, table(outcome)
    finally:
        if precinct is not None:
            precinct.close()
        world.close()
        if keep:
            print(f"kept: {folder} (daemon.log, broker/mosquitto.log), bait in {planted.bait_dir}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.rmtree(planted.bait_dir, ignore_errors=True)


def _start(world: World, when: str) -> list[Finding]:
    """Start the daemon again (systemd's Restart=); a finding if it no longer starts."""
    try:
        world.restart()
    except RuntimeError as exc:
        return [Finding("kiosk does not start", f"{when}: {exc}")]
    return []


def _between(world: World, trial: Trial, planted: Planted, seed: int, done: Counter[str]) -> None:
    """What a power cut and a failing card do while the daemon is down."""
    rng = random.Random(f"powercut {seed} damage {trial.index}")
    for kind in trial.between:
        match kind:
            case "wal_lost":
                damage_outbox(world.state, "wal_lost", world.quota)
            case "lease_garbled":
                garble_lease(world.state, world.folder, rng)
            case "disk_full":
                world.apply(Step(0.0, "disk_full"))
            case "disk_freed":
                world.apply(Step(0.0, "end_disk_full"))
            case "hostile":
                plant(trial.hostile, world.folder, ROOT, DEVICE, PRECINCT, f"before trial {trial.index}",
                      planted, rng)
                done.update(f"hostile {k}" for k in trial.hostile)
        done[kind] += 1


def _live(world: World, people: People, trial: Trial, errors: list[str]) -> Lived:
    """One life of the daemon: people and the broker on their schedule, then kill -9."""
    t0 = time.monotonic()
    answered, accepted = people.presses, len(people.accepted)
    stop = threading.Event()
    citizen = threading.Thread(target=run_steps, args=(trial.people, t0, people.act, errors, stop),
                               name="people", daemon=True)
    citizen.start()
    killed = [t0]

    def act(step: Step) -> None:
        if step.kind == "kill":
            killed[0] = time.monotonic()
            world.kill()
            stop.set()
        else:
            world.apply(step)

    # the broker is started and stopped on this (the main) thread: it dies with the thread that
    # started it (PR_SET_PDEATHSIG in tests/rig/net.py)
    run_steps(sorted([*trial.broker, Step(trial.kill_at, "kill")]), t0, act, errors)
    stop.set()
    citizen.join(30)
    return Lived(trial, t0, killed[0], people.presses - answered, len(people.accepted) - accepted)


def _trusted(received: list[Message], planted: Planted) -> list[Finding]:
    """A planted file's event, or its raw payload, reached the broker: the kiosk trusted it.

    A ``storage_damaged`` report names the refused file (and so its planted id): that is the
    kiosk telling the precinct it refused it, not trusting it."""
    found: dict[tuple[tuple[str, ...], str], Finding] = {}
    for m in received:
        if _refusal_report(m.payload):
            continue
        named = tuple(eid for eid in planted.events if eid.encode() in m.payload)
        if named or NOT_JSON.encode() in m.payload:
            what = ", ".join(planted.events[eid] for eid in named) or "not_json"
            found.setdefault((named, m.topic), Finding("planted file trusted", f"{what}: sent on {m.topic}",
                                                       named, at=m.received))
    return list(found.values())


def _refusal_report(payload: bytes) -> bool:
    try:
        body = json.loads(payload)
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("type") == "storage_damaged" \
        and not str(body.get("event_id", "")).startswith("planted-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.powercut", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100, help="daemon lives, each ended by kill -9 (100)")
    parser.add_argument("--seed", type=int, default=1, help="the schedule's seed (default 1)")
    parser.add_argument("--drain", type=float, default=150.0, help="longest wait for the drain (s)")
    parser.add_argument("--without", nargs="+", default=[], metavar="KIND", choices=[*BETWEEN, *HOSTILE],
                        help="leave these kinds of damage out (e.g. one that already stops the kiosk)")
    parser.add_argument("--plan", action="store_true", help="print the schedule and exit")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs) for a post-mortem")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    args = parser.parse_args(argv)
    if args.trials < 1:
        parser.error("--trials must be at least 1")
    if args.plan:
        print(describe(plan(args.seed, args.trials, HOSTILE, without=args.without)))
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(relativeCreated)9.0f ms %(name)s %(message)s")
    passed, text = run(args.seed, args.trials, drain=args.drain, keep=args.keep, without=args.without)
    print(text)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
