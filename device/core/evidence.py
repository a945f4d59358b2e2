"""Capture results inside ``decide()``: the ``evidence`` event, and faults raised once.

A broken camera must be reported to the precinct, but once — not on every alarm — and its
recovery too, so the fault state lives in the core state like any other.
"""

from __future__ import annotations

from safehouse.device.core import codes
from safehouse.device.core.inputs import EvidenceEvicted, EvidenceReady
from safehouse.device.core.lifecycle import Step

PARTS = ("camera", "microphone")


def on_evidence_ready(step: Step, inp: EvidenceReady) -> None:
    step.emit("evidence", None, test=inp.test, alarm_id=inp.alarm_id,
              files=[dict(f) for f in inp.files], failures=dict(inp.failures))
    faulty = set(step.state.faulty)
    for part in PARTS:
        if part in inp.failures and part not in faulty:
            faulty.add(part)
            step.emit(f"{part}_fault", codes.PERIPHERAL_TROUBLE, reason=inp.failures[part])
        elif part not in inp.failures and part in faulty and _captured(inp, part):
            faulty.discard(part)
            step.emit(f"{part}_restored", codes.PERIPHERAL_TROUBLE)
    step.update(faulty=frozenset(faulty))


def _captured(inp: EvidenceReady, part: str) -> bool:
    kind = "image/jpeg" if part == "camera" else "audio/wav"
    return any(f.get("content_type") == kind for f in inp.files)


def on_evidence_evicted(step: Step, inp: EvidenceEvicted) -> None:
    step.emit("evidence_evicted", codes.PERIPHERAL_TROUBLE, alarm_ids=list(inp.alarm_ids),
              reason="undelivered evidence deleted past evidence.hard_limit_mb")
