"""The chaos run's schedule: a pure function of (seed, duration), so a seed replays exactly.

Two streams share the clock. The *people* stream is a citizen pressing the button and the
volunteer answering on the keypad (a PIN#, sometimes a wrong PIN first, then a resolve code).
The *faults* stream breaks one thing at a time per resource (the broker, the daemon, the
camera, the keypad cable, the disk, the wall clock) and mends it ``hold`` seconds later;
faults on different resources overlap freely, which is where the interesting bugs live.
Every fault ends before ``duration``: the run then heals, drains and judges.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# kind -> (resource it occupies, shortest and longest time it stays broken)
FAULTS: dict[str, tuple[str, float, float]] = {
    "kill_daemon": ("daemon", 0.3, 3.0),      # kill -9, restarted after `hold`
    "broker_stop": ("broker", 2.0, 12.0),     # SIGTERM (persisting its sessions), started again
    "broker_blackhole": ("broker", 3.0, 15.0),  # the port accepts TCP and never answers
    "camera_hang": ("camera", 3.0, 15.0),     # `safehouse simulate camera hang`
    "keypad_unplug": ("keypad", 2.0, 10.0),   # socat stopped: the serial device vanishes
    "disk_full": ("disk", 3.0, 12.0),         # a filler file takes every free byte of state_dir
    "state_readonly": ("disk", 3.0, 12.0),    # state_dir's file system remounted read-only, daemon running
    "outbox_corrupt": ("daemon", 0.3, 2.0),   # kill -9, outbox.db's header garbled, restarted after `hold`
    "wal_lost": ("daemon", 0.3, 2.0),         # kill -9, the outbox's WAL deleted, restarted after `hold`
    "clock_jump": ("clock", 0.0, 0.0),        # the kiosk's wall clock steps ±1 h, and stays
}
RESOLVE_CODES = ("3", "4", "5")  # assistance, false alarm, handed to police (the keypad card)


@dataclass(frozen=True, order=True)
class Step:
    at: float       # seconds after the start
    kind: str       # a FAULTS kind, its "end_<kind>", or a people action
    arg: str = ""   # clock_jump: "+3600"/"-3600"; resolve: the code; wrong_pin: the digits


def plan(seed: int, duration: float, *, fault_gap: tuple[float, float] = (2.0, 8.0),
         press_gap: tuple[float, float] = (3.0, 7.0)) -> tuple[list[Step], list[Step]]:
    """(people steps, fault steps), each sorted by time."""
    rng = random.Random(seed)
    return _people(rng, duration, press_gap), _faults(rng, duration, fault_gap)


def _people(rng: random.Random, duration: float, gap: tuple[float, float]) -> list[Step]:
    steps: list[Step] = []
    t = rng.uniform(0.5, 2.0)
    while t < duration:
        steps.append(Step(round(t, 3), "press"))
        t_ack = t + rng.uniform(0.8, 3.0)
        if rng.random() < 0.25:  # the citizen presses again before anyone answers
            steps.append(Step(round(rng.uniform(t + 0.3, t_ack), 3), "press"))
        if rng.random() < 0.15:  # a fat-fingered volunteer: one wrong PIN first
            steps.append(Step(round(t_ack - 0.3, 3), "wrong_pin", f"{rng.randrange(10**6):06d}"))
        steps.append(Step(round(t_ack, 3), "ack"))
        t_resolve = t_ack + rng.uniform(0.5, 2.5)
        steps.append(Step(round(t_resolve, 3), "resolve", rng.choice(RESOLVE_CODES)))
        t = t_resolve + rng.uniform(*gap)
    return sorted(s for s in steps if s.at < duration)


def _faults(rng: random.Random, duration: float, gap: tuple[float, float]) -> list[Step]:
    """Kinds are drawn from a shuffled bag, so every kind comes up once before any comes twice;
    a kind whose resource is still broken waits in the bag for the next slot."""
    steps: list[Step] = []
    busy_until: dict[str, float] = {}
    bag: list[str] = []
    t = rng.uniform(*gap) / 2
    while t < duration:
        if not bag:
            bag = sorted(FAULTS)
            rng.shuffle(bag)
        free = [k for k in bag if busy_until.get(FAULTS[k][0], 0.0) <= t]
        if free:
            kind = free[0]
            resource, shortest, longest = FAULTS[kind]
            hold = round(rng.uniform(shortest, longest), 3)
            if t + hold < duration:
                bag.remove(kind)
                arg = rng.choice(("+3600", "-3600")) if kind == "clock_jump" else ""
                steps.append(Step(round(t, 3), kind, arg))
                if hold:
                    steps.append(Step(round(t + hold, 3), f"end_{kind}"))
                busy_until[resource] = t + hold + 0.5
        t += rng.uniform(*gap)
    return sorted(steps)


def throwaway_pin(seed: int, people: list[Step]) -> str:
    """The volunteer's PIN for this run: from the seed too (a replay types the same keys), and
    never one of the wrong PINs the schedule types."""
    rng = random.Random(f"pin {seed}")
    wrong = {s.arg for s in people if s.kind == "wrong_pin"}
    while (pin := f"{rng.randrange(10**6):06d}") in wrong:
        continue
    return pin


def describe(steps: list[Step]) -> str:
    """The schedule as text, one step a line (printed with --plan, and diffable between seeds)."""
    return "\n".join(f"{s.at:8.3f}  {s.kind}{' ' + s.arg if s.arg and s.kind != 'wrong_pin' else ''}"
                     for s in steps)
