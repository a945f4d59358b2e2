"""The power-cut loop's table, and each failure traced to the trial that made it.

An event names its trial by its ``mono`` (the kiosk's monotonic clock, the machine's, read
when the event was decided): trial ``i``'s daemon lives between the kill of trial ``i-1`` and
its own kill. A planted event names the trial it was planted before; a message no event can
name (a raw payload), the trial it arrived in. The faults that matter for a trial are those
before its start (what its daemon found) and those after its kill (what hit what it left).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.chaos_order import Finding, short
from bench.chaos_order import describe as ranges
from bench.chaos_precinct import Verdict, arrivals
from bench.chaos_world import World
from bench.powercut_damage import Planted
from bench.powercut_plan import Trial
from tests.rig.mqtt_message import Message


@dataclass(frozen=True)
class Lived:
    """One trial as it ran: when its daemon was ready and when it was killed (monotonic)."""

    trial: Trial
    ready: float
    killed: float
    answered: int
    accepted: int


@dataclass(frozen=True)
class Outcome:
    seed: int
    schedule: list[Trial]
    lived: list[Lived]
    verdict: Verdict
    extra: list[Finding]  # planted files trusted, files behind links changed
    errors: list[str]
    between: Counter[str]
    world: World
    records: dict[str, str]  # accepted alarm -> where the kiosk said it stood when it answered
    accepted: dict[str, float]  # accepted alarm -> when it was pressed (monotonic)
    root: str
    received: list[Message]
    stored: list[dict[str, Any]]
    planted: Planted
    drained: float
    last_start: str  # what ran after the last kill: the start once mended, or one that never answered


def table(o: Outcome) -> str:
    v, w = o.verdict, o.world
    findings = [*v.failures, *o.extra]
    records = Counter(o.records.values())
    flaps = Counter(s.kind for t in o.schedule[:len(o.lived)] for s in t.broker
                    if not s.kind.startswith("end_"))
    hostile = ", ".join(f"{k[8:]} {n}" for k, n in sorted(o.between.items()) if k.startswith("hostile "))
    between = ", ".join(f"{k} {n}" for k, n in sorted(o.between.items()) if not k.startswith("hostile "))
    rows = [
        ("trials (daemon lives ended by kill -9)", f"{len(o.lived)} of {len(o.schedule)}"),
        ("done between trials", between or "nothing"),
        ("hostile files planted", hostile or "none"),
        ("broker outages during trials", ", ".join(f"{k} {n}" for k, n in sorted(flaps.items())) or "none"),
        ("presses answered", f"{v.presses}"),
        ("alarms accepted (new alarm ids)", f"{v.alarms_accepted} ("
         + ", ".join(f"{k} {n}" for k, n in sorted(records.items())) + ")"),
        ("alarms delivered / LOST", f"{v.alarms_delivered} / {len(v.lost_alarms)}"),
        ("stored events lost on the way", f"{len(v.lost_events)}"),
        ("one seq with two identities", f"{len(v.conflicts)}"),
        ("seq issued backwards", f"{len(v.backwards)}"),
        ("out of order (behind an alarm from memory, allowed)", f"{v.out_of_order} ({v.behind_memory})"),
        ("seq gaps reported (storage_damaged)", f"{len(v.reported_gaps)}"),
        ("seq gaps NOT reported", ranges(g.seqs for g in v.unreported_gaps if g.seqs)),
        ("misplaced messages", f"{len(v.misplaced)}"),
        ("planted files trusted", f"{sum(1 for f in o.extra if f.what == 'planted file trusted')}"),
        ("files behind planted links changed", f"{sum(1 for f in o.extra if f.what == 'followed a link')}"),
        ("kiosk start attempts refused", f"{w.start_failures}"),
        ("drain after mending", f"{o.drained:.1f} s"),
        ("harness errors", f"{len(o.errors)}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"power-cut loop: seed {o.seed}, {len(o.schedule)} trials"]
    lines += [f"  {name:<{width}}  {value}" for name, value in rows]
    if findings:
        lines.append("failures, traced to their trials:")
        trace = Tracer(o)
        for f in findings:
            where = trace(f)
            lines += [f"  {f}"] + ([f"      {where}"] if where else [])
    lines += [f"  error {e}" for e in o.errors]
    passed = not findings and not o.errors
    lines.append("verdict: " + ("PASS: nothing lost, no seq reused, every gap reported, nothing trusted"
                                if passed else f"FAIL ({len(findings)} finding(s))"))
    return "\n".join(lines).encode("utf-8", "backslashreplace").decode("utf-8")  # a terminal can print it


class Tracer:
    """Which trial (and which faults) a finding comes from."""

    def __init__(self, o: Outcome) -> None:
        self.o = o
        self.mono = dict(o.accepted)  # an alarm never received: when it was pressed
        self.mono.update({str(e["event_id"]): float(e["mono"]) for e in o.stored
                          if isinstance(e["mono"], int | float)})
        self.mono.update({e["event_id"]: float(e["mono"]) for _at, e in arrivals(o.received, o.root)})
        self.full: set[int] = set()  # trials that ran on a full state_dir
        full = False
        for trial in o.schedule:
            full = (full or "disk_full" in trial.between) and "disk_freed" not in trial.between
            if full:
                self.full.add(trial.index)

    def __call__(self, f: Finding) -> str:
        where: list[str] = []
        for eid in f.event_ids:
            if eid[:24] in self.o.planted.events:
                where.append(f"{eid[:24]}: planted, {self.o.planted.events[eid[:24]]}")
            elif eid in self.mono:
                where.append(f"{short(eid)}: {self.describe(self.trial_at(self.mono[eid]))}")
        if f.at is not None:
            where.append(f"arrived {self.describe(self.trial_at(f.at))}")
        return "; ".join(where)

    def trial_at(self, t: float) -> int | None:
        """The trial whose daemon was alive at ``t`` (None: after the last kill, once mended)."""
        for lived in self.o.lived:
            if t <= lived.killed:
                return lived.trial.index
        return None

    def describe(self, index: int | None) -> str:
        if index is None:
            return self.o.last_start
        trial = self.o.schedule[index]
        after = self.o.schedule[index + 1].between if index + 1 < len(self.o.lived) else ("mended",)
        disk = "; on a full disk" if index in self.full else ""
        return (f"trial {index} (started after: {faults_of(trial)}{disk}; {_broker(trial.broker)}; "
                f"kill -9 at {trial.kill_at:g} s; then: {', '.join(after) or 'nothing'})")


def faults_of(trial: Trial) -> str:
    hostile = f" [{', '.join(trial.hostile)}]" if trial.hostile else ""
    return (", ".join(trial.between) or "nothing") + hostile


def _broker(steps: Sequence[Any]) -> str:
    return " ".join(f"{s.kind} at {s.at:g} s" for s in steps) or "broker up"
