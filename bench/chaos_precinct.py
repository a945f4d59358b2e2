"""The precinct's side of a chaos run: a durable subscriber, and the verdict on what it saw.

It subscribes the way the README tells a precinct console to: MQTT 5, a persistent session
(clean_start off, a long session expiry) and QoS 1, so what the broker accepted while the
console was cut off is still handed over later. The verdict compares what it received with
what the kiosk accepted and stored: lost, duplicated, reordered.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

SESSION_EXPIRY = 86400


@dataclass
class Received:
    at: float  # time.monotonic() of the chaos process when it arrived
    event: dict[str, Any]


class Precinct:
    def __init__(self, port: int, device_root: str) -> None:
        self._root = device_root
        self.events: list[Received] = []
        self.evidence: dict[str, int] = {}  # event_id -> files received (first time)
        self.connects = 0
        self._lock = threading.Lock()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="chaos-precinct",
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.connect_timeout = 2.0
        self._client.reconnect_delay_set(0.2, 1.0)
        self._client.on_connect = self._connected
        self._client.on_message = self._message
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        self._client.connect_async("127.0.0.1", port, keepalive=5, clean_start=False, properties=props)

    def start(self) -> None:
        self._client.loop_start()

    def wait_connected(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while self.connects == 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the precinct subscriber did not connect within {timeout:g} s")
            time.sleep(0.02)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _connected(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            self.connects += 1
            client.subscribe(self._root + "#", qos=1)

    def _message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        rest = msg.topic[len(self._root):]
        if rest == "events":
            with self._lock:
                self.events.append(Received(now, json.loads(msg.payload)))
        elif rest.startswith("evidence/"):
            event_id = rest.split("/")[1]
            with self._lock:
                self.evidence[event_id] = self.evidence.get(event_id, 0) + 1

    def first_seen(self) -> dict[str, Received]:
        """event_id -> its first arrival."""
        with self._lock:
            seen: dict[str, Received] = {}
            for r in self.events:
                seen.setdefault(r.event["event_id"], r)
            return seen


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


def judge(precinct: Precinct, accepted: dict[str, float], presses: int,
          stored: list[dict[str, Any]]) -> Verdict:
    """``accepted``: alarm event_id -> when its press was made; ``stored``: the kiosk's events."""
    with precinct._lock:
        arrivals = list(precinct.events)
    first: dict[str, Received] = {}
    seq_of: dict[str, int] = {}
    conflicts: list[str] = []
    by_seq: dict[int, str] = {}
    highest, reordered = 0, 0
    for r in arrivals:
        eid, seq = r.event["event_id"], int(r.event["seq"])
        if by_seq.setdefault(seq, eid) != eid or seq_of.setdefault(eid, seq) != seq:
            conflicts.append(f"seq {seq}: {by_seq[seq]} / {eid}")
        if eid in first:
            continue
        first[eid] = r
        if seq < highest:
            reordered += 1
        highest = max(highest, seq)
    lost_alarms = sorted(eid for eid in accepted if eid not in first)
    lost_events = sorted(int(e["seq"]) for e in stored if e["event_id"] not in first)
    delays = {eid: first[eid].at - at for eid, at in accepted.items() if eid in first}
    worst = max(delays, key=lambda k: delays[k], default="")
    return Verdict(presses=presses, alarms_accepted=len(accepted),
                   alarms_delivered=len(accepted) - len(lost_alarms), lost_alarms=lost_alarms,
                   lost_events=lost_events, duplicates=len(arrivals) - len(first), conflicts=conflicts,
                   out_of_order=reordered, worst_delay=delays.get(worst, 0.0), worst_alarm=worst)
