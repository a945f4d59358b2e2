"""The precinct's side of a chaos run: what its console received, and the verdict on it.

The console is the test rig's ``Subscriber`` subscribed the way the README tells a precinct
to: MQTT 5, a persistent session (``session_expiry``) and QoS 1, so what the broker accepted
while the console was cut off is still handed over later. The verdict compares what it
received with what the kiosk accepted and stored: lost, duplicated, reordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.rig.broker import Broker
from tests.rig.mqtt_message import Message
from tests.rig.subscriber import Subscriber

SESSION_EXPIRY = 86400


def console(broker: Broker, device_root: str) -> Subscriber:
    return broker.subscriber([device_root + "#"], client_id="chaos-precinct", keepalive=5,
                             session_expiry=SESSION_EXPIRY)


def arrivals(messages: list[Message], device_root: str) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, event) for every event message, in arrival order, duplicates included."""
    return [(m.received, m.json()) for m in messages if m.topic == device_root + "events"]


def first_seen(messages: list[Message], device_root: str) -> dict[str, float]:
    """event_id -> its first arrival."""
    seen: dict[str, float] = {}
    for at, event in arrivals(messages, device_root):
        seen.setdefault(event["event_id"], at)
    return seen


def alarms_with_evidence(messages: list[Message], device_root: str) -> int:
    prefix = device_root + "evidence/"
    return len({m.topic[len(prefix):].split("/")[0] for m in messages if m.topic.startswith(prefix)})


@dataclass
class Verdict:
    presses: int
    alarms_accepted: int
    alarms_delivered: int
    lost_alarms: list[str]
    lost_events: list[int]          # seqs the kiosk stored that never arrived
    duplicates: int                 # redeliveries of an event_id already seen
    conflicts: list[str] = field(default_factory=list)  # one seq, two event_ids (or the reverse)
    out_of_order: int = 0           # a first arrival whose seq is below one already seen
    worst_delay: float = 0.0        # press -> first arrival of its alarm, seconds
    worst_alarm: str = ""

    @property
    def passed(self) -> bool:
        return not (self.lost_alarms or self.lost_events or self.conflicts or self.out_of_order)


def judge(messages: list[Message], device_root: str, accepted: dict[str, float], presses: int,
          stored: list[dict[str, Any]]) -> Verdict:
    """``accepted``: alarm event_id -> when its press was made; ``stored``: the kiosk's events."""
    received = arrivals(messages, device_root)
    first: dict[str, float] = {}
    seq_of: dict[str, int] = {}
    by_seq: dict[int, str] = {}
    conflicts: list[str] = []
    highest, reordered = 0, 0
    for at, event in received:
        eid, seq = event["event_id"], int(event["seq"])
        if by_seq.setdefault(seq, eid) != eid or seq_of.setdefault(eid, seq) != seq:
            conflicts.append(f"seq {seq}: {by_seq[seq]} / {eid}")
        if eid in first:
            continue
        first[eid] = at
        if seq < highest:
            reordered += 1
        highest = max(highest, seq)
    lost_alarms = sorted(eid for eid in accepted if eid not in first)
    lost_events = sorted(int(e["seq"]) for e in stored if e["event_id"] not in first)
    delays = {eid: first[eid] - at for eid, at in accepted.items() if eid in first}
    worst = max(delays, key=lambda k: delays[k], default="")
    return Verdict(presses=presses, alarms_accepted=len(accepted),
                   alarms_delivered=len(accepted) - len(lost_alarms), lost_alarms=lost_alarms,
                   lost_events=lost_events, duplicates=len(received) - len(first), conflicts=conflicts,
                   out_of_order=reordered, worst_delay=delays.get(worst, 0.0), worst_alarm=worst)
