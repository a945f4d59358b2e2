"""`make chaos`: the real kiosk against a real broker while everything around it breaks.

Usage: python -m bench.chaos [--seed N] [--duration S] [--plan]

For ``--duration`` seconds a citizen presses the panic button and a volunteer answers on
the serial keypad, while a seeded schedule kills the daemon (-9), stops the broker, swaps it
for a black hole, hangs the camera, pulls the keypad cable, fills ``state_dir`` and steps the
wall clock ±1 h. Then everything is mended and the run waits for the kiosk to drain. The
table says what the precinct received against what the kiosk accepted and what the contract
promises (bench/chaos_order.py); the exit status is 1 when an accepted alarm or a stored event
was lost, a seq went backwards or named two events, an event arrived out of order (but for the
alarms sent from memory), a seq gap went unreported, or a message left the kiosk's topics.
Needs root (a tmpfs for state_dir), mosquitto and socat: ``make test`` installs them.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.chaos_order import describe as ranges
from bench.chaos_plan import Step, describe, plan, throwaway_pin
from bench.chaos_precinct import Verdict, alarms_with_evidence, console, first_seen, judge
from bench.chaos_world import DEVICE, PRECINCT, World
from safehouse.services.outbox_read import read_events
from safehouse.services.topics import Topics
from tests.rig.subscriber import Subscriber

_LOG = logging.getLogger("chaos")


class People:
    """The citizen and the volunteer: what they did and which alarms the kiosk accepted."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.presses = 0
        self.accepted: dict[str, float] = {}  # alarm event_id -> monotonic time of its press
        self.records: dict[str, str] = {}  # alarm event_id -> where the kiosk said it stood

    @property
    def durable(self) -> set[str]:
        """The accepted alarms the kiosk answered as on disk."""
        return {eid for eid, record in self.records.items() if record == "durable"}

    def act(self, step: Step) -> None:
        w = self.world
        match step.kind:
            case "press":
                at = time.monotonic()
                res = w.call("press")
                if res is not None:
                    self.presses += 1
                    if res["new_alarm"]:
                        self.accepted[res["alarm"]["event_id"]] = at
                        self.records[res["alarm"]["event_id"]] = str(res.get("record"))
            case "wrong_pin":
                w.keys(step.arg + "#")
            case "ack":
                if not w.keys(w.pin + "#"):
                    w.call("ack", by="technician")  # the cable is out: the back-room console
            case "resolve":
                w.keys(f"{w.pin}*{step.arg}#")
                time.sleep(0.5)
                status = w.call("status")
                if status is not None and status["alarm"]["state"] != "idle":
                    w.call("resolve", outcome="false_alarm", by="technician")
            case "resolve_now":  # the back-room console, at once
                w.call("resolve", outcome="false_alarm", by="technician")


def run_steps(steps: Sequence[Step], t0: float, act: Callable[[Step], None], errors: list[str],
              stop: threading.Event | None = None) -> None:
    """Each step at its time after ``t0``; the rest are dropped once ``stop`` is set."""
    stop = stop or threading.Event()
    for step in steps:
        if stop.wait(max(0.0, t0 + step.at - time.monotonic())):
            return
        try:
            act(step)
        except Exception as exc:  # a harness failure is reported, and fails the run
            errors.append(f"{step.at:.1f}s {step.kind}: {type(exc).__name__}: {exc}")
            _LOG.exception("step %s failed", step)


def run(seed: int, duration: float, *, drain: float = 150.0, folder: Path | None = None,
        keep: bool = False, fault_gap: tuple[float, float] = (2.0, 8.0)) -> tuple[bool, Verdict, str]:
    """One chaos run: (passed, verdict, table); harness errors fail it too."""
    people_steps, fault_steps = plan(seed, duration, fault_gap=fault_gap)
    own = folder is None
    folder = folder or Path(tempfile.mkdtemp(prefix="chaos-", dir="/tmp"))
    world = World(folder, seed=seed, pin=throwaway_pin(seed, people_steps))
    errors: list[str] = []
    precinct: Subscriber | None = None
    root = Topics(PRECINCT, DEVICE).root
    try:
        world.start_broker()
        precinct = console(world.broker)
        world.start_kiosk()
        people = People(world)
        t0 = time.monotonic()
        citizen = threading.Thread(target=run_steps, args=(people_steps, t0, people.act, errors),
                                   name="people", daemon=True)  # Ctrl-C must not wait for it
        citizen.start()
        # Faults run on this (the main) thread: the broker dies with the thread that started it
        # (PR_SET_PDEATHSIG in tests/rig/net.py), so a short-lived thread must never start it.
        run_steps(fault_steps, t0, world.apply, errors)
        citizen.join()
        world.heal()
        healed = time.monotonic()
        stored = wait_drained(world, precinct, root, people.accepted, drain)
        drained = time.monotonic() - healed
        received = precinct.messages()
        verdict = judge(received, root, people.accepted, people.presses, stored, durable=people.durable)
        table = _table(seed, duration, world, alarms_with_evidence(received, root), verdict, len(stored),
                       drained, errors)
        return verdict.passed and not errors, verdict, table
    finally:
        if precinct is not None:
            precinct.close()
        world.close()
        if own and not keep:
            shutil.rmtree(folder, ignore_errors=True)
        elif keep:
            print(f"kept: {folder} (daemon.log, broker/mosquitto.log)")


def wait_drained(world: World, precinct: Subscriber, root: str, accepted: Iterable[str],
                 limit: float) -> list[dict[str, Any]]:
    """Wait until the precinct holds every stored event and every accepted alarm (or ``limit``);
    the events stored in the outbox then."""
    deadline = time.monotonic() + limit
    while True:
        stored = [{"event_id": e.event_id, "seq": e.seq, "mono": e.mono} for e in read_events(world.state)]
        seen = first_seen(precinct.messages(), root)
        if (all(e["event_id"] in seen for e in stored) and all(a in seen for a in accepted)) \
                or time.monotonic() > deadline:
            return stored
        time.sleep(0.5)


def _table(seed: int, duration: float, world: World, with_evidence: int, v: Verdict, stored: int,
           drained: float, errors: list[str]) -> str:
    faults = ", ".join(f"{k} {n}" for k, n in sorted(world.applied.items()) if not k.startswith("end_"))
    not_taken = ", ".join(f"{k} {n}" for k, n in sorted(world.failed.items())) or "none"
    rows = [
        ("presses accepted", f"{v.presses}"),
        ("alarms accepted (new alarm ids)", f"{v.alarms_accepted}"),
        ("alarms delivered", f"{v.alarms_delivered}"),
        ("LOST alarms", f"{len(v.lost_alarms)}"),
        ("events stored by the kiosk / lost on the way", f"{stored} / {len(v.lost_events)}"),
        ("duplicates (same event_id redelivered)", f"{v.duplicates}"),
        ("one seq with two identities", f"{len(v.conflicts)}"),
        ("seq issued backwards", f"{len(v.backwards)}"),
        ("out of order within the events lane", f"{v.out_of_order}"),
        ("behind an alarm sent from memory (allowed)", f"{v.behind_memory}"),
        ("seq gaps reported (storage_damaged)", ranges(v.reported_gaps)),
        ("seq gaps NOT reported", ranges(g.seqs for g in v.unreported_gaps if g.seqs)),
        ("misplaced messages", f"{len(v.misplaced)}"),
        ("worst press -> delivery delay", f"{v.worst_delay:.2f} s (alarm {v.worst_alarm[:8] or '-'})"),
        ("kiosk restarts after kill -9", f"{world.restarts}"),
        ("kiosk start attempts refused", f"{world.start_failures}"),
        ("alarms with evidence files received", f"{with_evidence}"),
        ("drain after healing", f"{drained:.1f} s"),
        ("actions the kiosk could not take then", not_taken),
        ("harness errors", f"{len(errors)}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"chaos: seed {seed}, {duration:g} s, faults: {faults or 'none'}"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    lines += [f"  {failure}" for failure in v.failures] + [f"  error {e}" for e in errors]
    passed = v.passed and not errors
    lines.append("verdict: " + ("PASS: nothing lost, nothing reordered, every gap reported" if passed
                                else "FAIL"))
    return "\n".join(lines)


def figures(seed: int, duration: float) -> list[dict[str, object]]:
    """The chaos run's rows for the benchmark report."""
    passed, v, _table = run(seed, duration)
    label = f"chaos (seed {seed}, {duration:g} s)"
    return [
        {"figure": f"{label}: alarms accepted", "value": v.alarms_accepted, "unit": "alarms"},
        {"figure": f"{label}: alarms lost", "value": len(v.lost_alarms), "unit": "alarms", "target": 0},
        {"figure": f"{label}: stored events lost", "value": len(v.lost_events), "unit": "events",
         "target": 0},
        {"figure": f"{label}: out of order in the events lane", "value": v.out_of_order, "unit": "events",
         "target": 0},
        {"figure": f"{label}: worst press -> delivery", "value": v.worst_delay, "unit": "s",
         "note": "includes broker outages and black holes of up to 15 s"
                 + ("" if passed else "; RUN FAILED")},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=1, help="the schedule's seed (default 1)")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of chaos (default 180)")
    parser.add_argument("--drain", type=float, default=150.0, help="longest wait for the drain (s)")
    parser.add_argument("--fault-gap", type=float, nargs=2, default=(2.0, 8.0), metavar=("MIN", "MAX"),
                        help="seconds between one fault's start and the next (default 2 8)")
    parser.add_argument("--plan", action="store_true", help="print the schedule and exit")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs) for a post-mortem")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every step")
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if args.plan:
        people, faults = plan(args.seed, args.duration, fault_gap=tuple(args.fault_gap))
        print(describe(sorted(people + faults)))
        return 0
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(relativeCreated)9.0f ms %(name)s %(message)s")
    passed, _verdict, table = run(args.seed, args.duration, drain=args.drain, keep=args.keep,
                                  fault_gap=tuple(args.fault_gap))
    print(table)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
