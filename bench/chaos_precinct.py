"""The precinct's side of a chaos run: what its console received, and the verdict on it.

The console is the test rig's ``Subscriber`` subscribed the way the README tells a precinct
to: MQTT 5, a persistent session (``session_expiry``) and QoS 1, so what the broker accepted
while the console was cut off is still handed over later. It listens to the whole
``safehouse/`` tree, wider than a precinct needs, so a kiosk publishing where it must not
(another kiosk's topic, taken from a planted file) is seen too. The verdict compares what it
received with what the kiosk accepted and stored (lost, duplicated) and with the contract's
seq rules (``chaos_order``): never backwards, never two events on one seq, in order but for
the alarms sent from memory, every gap reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from bench.chaos_order import (
    Finding,
    Range,
    backwards,
    describe,
    gaps,
    reordered,
    salvage_windows,
    uncovered,
)
from tests.rig.broker import Broker
from tests.rig.mqtt_message import Message
from tests.rig.subscriber import Subscriber

SESSION_EXPIRY = 86400
WATCHED = "safehouse/#"
_FIELDS = {"event_id": str, "seq": int, "type": str, "boot_id": str, "device_id": str, "precinct": str}


def console(broker: Broker) -> Subscriber:
    return broker.subscriber([WATCHED], client_id="chaos-precinct", keepalive=5,
                             session_expiry=SESSION_EXPIRY)


def parse(message: Message) -> dict[str, Any] | str:
    """An event as the contract shapes it, or why it is not one."""
    try:
        event = json.loads(message.payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not UTF-8 JSON ({exc}): {message.payload[:40]!r}"
    if not isinstance(event, dict):
        return f"not an object: {message.payload[:40]!r}"
    try:  # JSON can spell lone surrogates (\ud800); the contract's text is valid Unicode
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return f"text that is not valid Unicode (a lone surrogate): {message.payload[:60]!r}"
    for name, kind in _FIELDS.items():
        if not isinstance(event.get(name), kind) or isinstance(event.get(name), bool):
            return f"field {name} is {event.get(name)!r:.40}"
    if not isinstance(event.get("mono"), int | float) or isinstance(event.get("mono"), bool):
        return f"field mono is {event.get('mono')!r:.40}"
    return event


def arrivals(messages: list[Message], device_root: str) -> list[tuple[float, dict[str, Any]]]:
    """(arrival time, event) for every well-formed event of this kiosk, in arrival order,
    duplicates included."""
    device, precinct = _ids(device_root)
    found = []
    for m in messages:
        if m.topic == device_root + "events":
            event = parse(m)
            if isinstance(event, dict) and event["device_id"] == device and event["precinct"] == precinct:
                found.append((m.received, event))
    return found


def misplaced(messages: list[Message], device_root: str) -> list[Finding]:
    """Messages the kiosk must never send: off its own topics, or on its events topic but not
    one of its events (malformed, or naming another kiosk)."""
    device, precinct = _ids(device_root)
    found = []
    for m in messages:
        if not m.topic.startswith(device_root):
            event = parse(m)
            named = (event["event_id"],) if isinstance(event, dict) else ()
            found.append(Finding("misplaced", f"{m.topic}: {m.payload[:60]!r}", named, at=m.received))
        elif m.topic == device_root + "events":
            event = parse(m)
            if isinstance(event, str):
                found.append(Finding("misplaced", f"{m.topic}: {event}", at=m.received))
            elif (event["device_id"], event["precinct"]) != (device, precinct):
                found.append(Finding("misplaced", f"{m.topic}: an event of {event['precinct']}/"
                                     f"{event['device_id']}, seq {event['seq']}", (event["event_id"],),
                                     at=m.received))
    return found


def _ids(device_root: str) -> tuple[str, str]:
    """(device_id, precinct) of a root ``safehouse/v1/{precinct}/{device_id}/``."""
    parts = device_root.strip("/").split("/")
    return parts[3], parts[2]


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
    lost_events: list[Finding]      # events the kiosk stored that never arrived
    duplicates: int                 # redeliveries of an event_id already seen
    conflicts: list[Finding] = field(default_factory=list)  # one seq, two event_ids (or the reverse)
    backwards: list[Finding] = field(default_factory=list)  # a seq below one issued before it
    reorders: list[Finding] = field(default_factory=list)   # arrived after a newer event, not allowed
    behind_memory: int = 0          # arrived after an alarm sent from memory: allowed
    unreported_gaps: list[Finding] = field(default_factory=list)
    reported_gaps: list[Range] = field(default_factory=list)
    misplaced: list[Finding] = field(default_factory=list)  # off the kiosk's topics, or not its events
    worst_delay: float = 0.0        # press -> first arrival of its alarm, seconds
    worst_alarm: str = ""

    @property
    def out_of_order(self) -> int:
        return len(self.reorders)

    @property
    def failures(self) -> list[Finding]:
        """Every broken promise (empty when the run passed)."""
        return ([Finding("LOST alarm", eid, (eid,)) for eid in self.lost_alarms] + self.lost_events
                + self.conflicts + self.backwards + self.reorders + self.unreported_gaps + self.misplaced)

    @property
    def passed(self) -> bool:
        return not self.failures


def judge(messages: list[Message], device_root: str, accepted: dict[str, float], presses: int,
          stored: list[dict[str, Any]], *, durable: set[str]) -> Verdict:
    """``accepted``: alarm event_id -> when its press was made; ``stored``: the kiosk's events;
    ``durable``: the accepted alarms the kiosk answered as on disk."""
    received = arrivals(messages, device_root)
    first: dict[str, float] = {}
    firsts: list[dict[str, Any]] = []
    seq_of: dict[str, int] = {}
    by_seq: dict[int, str] = {}
    conflicts: dict[str, Finding] = {}
    for at, event in received:
        eid, seq = event["event_id"], event["seq"]
        named, held = by_seq.setdefault(seq, eid), seq_of.setdefault(eid, seq)
        if named != eid:
            conflicts.setdefault(f"seq {seq}: {named} / {eid}", Finding("two identities", "", (named, eid)))
        if held != seq:
            conflicts.setdefault(f"event {eid}: seq {held} / {seq}", Finding("two identities", "", (eid,)))
        if eid not in first:
            first[eid] = at
            firsts.append(event)
    reports = [e["data"] for e in firsts
               if e["type"] == "storage_damaged" and isinstance(e.get("data"), dict)]
    missing = [m for m in (_range(r.get("missing_seq")) for r in reports) if m is not None]
    held = salvage_windows((e["data"]["seq_high_water"], e["seq"]) for e in firsts
                           if e["type"] == "storage_damaged" and isinstance(e.get("data"), dict)
                           and type(e["data"].get("seq_high_water")) is int)
    reorders, behind = reordered(firsts, durable, held)
    seq_gaps = gaps(by_seq)
    unreported = uncovered(seq_gaps, missing)
    lost_alarms = sorted(eid for eid in accepted if eid not in first)
    lost_events = [Finding("LOST stored event", f"seq {e['seq']!r} ({e['event_id']})", (str(e["event_id"]),))
                   for e in sorted(stored, key=_by_seq) if e["event_id"] not in first]
    delays = {eid: first[eid] - at for eid, at in accepted.items() if eid in first}
    worst = max(delays, key=lambda k: delays[k], default="")
    return Verdict(presses=presses, alarms_accepted=len(accepted),
                   alarms_delivered=len(accepted) - len(lost_alarms), lost_alarms=lost_alarms,
                   lost_events=lost_events, duplicates=len(received) - len(first),
                   conflicts=[replace(f, text=text) for text, f in conflicts.items()],
                   backwards=backwards(firsts), reorders=reorders, behind_memory=behind,
                   unreported_gaps=[_unreported(g, by_seq) for g in unreported],
                   reported_gaps=uncovered(seq_gaps, unreported), misplaced=misplaced(messages, device_root),
                   worst_delay=delays.get(worst, 0.0), worst_alarm=worst)


def _by_seq(stored: dict[str, Any]) -> tuple[bool, int, str]:
    """Stored events by seq; one whose seq is not a number (a planted file's) last."""
    seq = stored["seq"]
    return type(seq) is not int, seq if type(seq) is int else 0, str(seq)


def _unreported(gap: Range, by_seq: dict[int, str]) -> Finding:
    """A gap no report covers, naming the event just above it: the one issued after the jump."""
    above = min((s for s in by_seq if s > gap[1]), default=None)
    return Finding("unreported gap", f"seq {describe([gap])} missing, not in any storage_damaged report",
                   () if above is None else (by_seq[above],), seqs=gap)


def _range(value: object) -> Range | None:
    if isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value):
        return value[0], value[1]
    return None
