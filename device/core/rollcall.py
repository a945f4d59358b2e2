"""The duty roll-call inside ``decide()``: started by the precinct (``cmd/rollcall``) or the
daily schedule, answered at the keypad, missed when its window runs out.

It has its own module because two adapters start or answer it (``precinct.py`` and
``keypad.py``); neither has to import the other for it.
"""

from __future__ import annotations

from safehouse.device.core.inputs import RollcallStarted
from safehouse.device.core.lifecycle import Step
from safehouse.device.core.state import Rollcall


def start_rollcall(step: Step, inp: RollcallStarted, now: float) -> bool:
    if step.state.rollcall is not None:
        step.reject("rollcall", "a roll-call is already waiting for an answer")
        return False
    deadline = now + step.state.policy.rollcall_window
    step.update(rollcall=Rollcall(started=now, deadline=deadline, source=inp.source))
    step.emit("rollcall_started", None, source=inp.source, window_s=step.state.policy.rollcall_window,
              on_duty=sorted(step.state.on_duty))
    return True


def answer_rollcall(step: Step, volunteer: str, now: float) -> bool:
    """A volunteer answered at the keypad (action ``rollcall``)."""
    rollcall = step.state.rollcall
    if rollcall is None:
        step.reject("keypad", "no roll-call to answer")
        return False
    step.update(rollcall=None)
    step.emit("rollcall_answered", None, volunteer=volunteer, response_s=round(now - rollcall.started, 3),
              source=rollcall.source)
    return True


def expire_rollcall(step: Step, now: float) -> None:
    rollcall = step.state.rollcall
    if rollcall is not None and now >= rollcall.deadline:
        step.update(rollcall=None)
        step.emit("rollcall_missed", None, source=rollcall.source,
                  window_s=round(rollcall.deadline - rollcall.started, 3), on_duty=sorted(step.state.on_duty))
