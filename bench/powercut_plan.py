"""The power-cut loop's schedule: a pure function of (seed, trials), so a seed replays exactly.

A trial is one life of the daemon: started, a citizen pressing (and a technician resolving,
so the next press is a new alarm), maybe a broker outage, then ``kill -9`` at a random moment,
often while a press is being answered. Between one trial's kill and the next start, the card
and the runtime folder suffer what a power cut and a failing card do to them (``BETWEEN``).
Times are seconds from the daemon being ready.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass

from bench.chaos_plan import Step

# what happens to the files between a kill and the next start, and how often (per trial)
BETWEEN: dict[str, float] = {
    "wal_lost": 0.25,       # outbox.db-wal deleted: its commits since the last checkpoint gone
    "lease_garbled": 0.25,  # state/seq.lease garbled, its runtime copy gone (as /run after a cut)
    "disk_full": 0.15,      # state_dir filled to the last byte; stays full until "disk_freed"
    "disk_freed": 0.5,      # (only while full) the filler removed
    "hostile": 0.25,        # hostile files planted in the runtime folder (powercut_damage.HOSTILE)
}
BROKER = ("broker_stop", "broker_blackhole")
LIVE = (0.5, 4.0)           # how long a trial's daemon lives before its kill -9
PRESS_GAP = (0.3, 1.5)
RESOLVE_AFTER = (0.2, 0.8)
OUTAGE = (0.5, 4.0)


@dataclass(frozen=True)
class Trial:
    index: int
    between: tuple[str, ...]  # applied, in this order, before the trial's daemon starts
    hostile: tuple[str, ...]  # the hostile kinds planted when "hostile" is in ``between``
    people: tuple[Step, ...]  # "press" / "resolve_now"
    broker: tuple[Step, ...]  # one outage (a BROKER kind and its end) or none; its end may
    kill_at: float            # come after the kill: the broker then stays away across the cut


def plan(seed: int, trials: int, hostile_kinds: tuple[str, ...], *,
         without: Collection[str] = ()) -> list[Trial]:
    """``hostile_kinds``: what "hostile" may plant; ``without``: kinds (of ``BETWEEN`` or hostile)
    never applied. The draws are made all the same, so the rest of the schedule stays as it was."""
    rng = random.Random(f"powercut {seed}")
    full = False
    found = []
    for index in range(trials):
        between: list[str] = []
        if index:  # the first daemon starts on a fresh world
            skip = "disk_full" if full else "disk_freed"
            between = [kind for kind, chance in BETWEEN.items()
                       if kind != skip and rng.random() < chance and kind not in without]
            full = (full or "disk_full" in between) and "disk_freed" not in between
        picked = rng.sample(hostile_kinds, min(len(hostile_kinds), rng.randint(2, 4)))
        hostile = tuple(sorted(k for k in picked if k not in without)) if "hostile" in between else ()
        if "hostile" in between and not hostile:
            between.remove("hostile")
        kill_at = round(rng.uniform(*LIVE), 3)
        found.append(Trial(index, tuple(between), hostile, _people(rng, kill_at), _broker(rng, kill_at),
                           kill_at))
    return found


def _people(rng: random.Random, until: float) -> tuple[Step, ...]:
    steps = []
    t = rng.uniform(0.0, 0.6)
    while t < until:
        steps.append(Step(round(t, 3), "press"))
        resolve = t + rng.uniform(*RESOLVE_AFTER)
        steps.append(Step(round(resolve, 3), "resolve_now"))
        t = resolve + rng.uniform(*PRESS_GAP)
    return tuple(steps)


def _broker(rng: random.Random, kill_at: float) -> tuple[Step, ...]:
    if rng.random() < 0.5:
        return ()
    kind = rng.choice(BROKER)
    start = rng.uniform(0.0, kill_at)
    return Step(round(start, 3), kind), Step(round(start + rng.uniform(*OUTAGE), 3), f"end_{kind}")


def describe(trials: list[Trial]) -> str:
    """The schedule as text, one trial a line (printed with --plan)."""
    lines = []
    for t in trials:
        between = " ".join(t.between) + (f" [{', '.join(t.hostile)}]" if t.hostile else "")
        broker = " ".join(f"{s.kind}@{s.at:g}" for s in t.broker)
        presses = sum(1 for s in t.people if s.kind == "press")
        lines.append(f"{t.index:4d}  before: {between or '-':<40} presses {presses}  "
                     f"{broker or 'broker up':<36} kill -9 @{t.kill_at:g}")
    return "\n".join(lines)
