"""The precinct's view of the fleet: births, last wills, alarms, and the broker's own counters.

A single MQTT 5 subscriber on the precinct's wildcard, as a console would have, plus the
broker's ``$SYS`` message counters (``sys_interval 1``) for messages per second. Times are
``time.monotonic()``, which every process on this machine shares, so a latency is the
observer's arrival time minus the worker's queueing time.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

# PUBLISH packets only; $SYS/broker/messages/* would also count PINGREQ, PUBACK and the rest
SYS_RECEIVED = "$SYS/broker/publish/messages/received"
SYS_SENT = "$SYS/broker/publish/messages/sent"


class Observer:
    def __init__(self, port: int, precinct: str) -> None:
        self._port = port
        self._root = f"safehouse/v1/{precinct}/"
        self.online: dict[str, float] = {}   # device -> first "online" status
        self.lost: dict[str, float] = {}     # device -> first "offline"/"lost" (its last will)
        self.events: dict[str, float] = {}   # event_id -> first arrival
        self._sys: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-precinct",
                                   protocol=MQTTProtocolVersion.MQTTv5)
        self._client.max_queued_messages_set(0)
        self._client.on_connect = self._connected
        self._client.on_message = self._message
        self._client.on_socket_open = lambda _c, _u, sock: _nodelay(sock)

    def start(self) -> Self:
        self._client.connect("127.0.0.1", self._port, keepalive=30)
        self._client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("the fleet observer could not subscribe within 10 s")
        return self

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _connected(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            return
        client.subscribe([(self._root + "+/status", 1), (self._root + "+/events", 1),
                          (SYS_RECEIVED, 0), (SYS_SENT, 0)])
        self._ready.set()

    def _message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.monotonic()
        if msg.topic.startswith("$SYS/"):
            with self._lock:
                self._sys[msg.topic] = (now, int(msg.payload))
            return
        device, _, kind = msg.topic[len(self._root):].partition("/")
        body = json.loads(msg.payload)
        with self._lock:
            if kind == "events":
                self.events.setdefault(body["event_id"], now)
            elif body.get("state") == "online":
                self.online.setdefault(device, now)
            elif body.get("state") == "offline" and body.get("reason") == "lost":
                self.lost.setdefault(device, now)

    def wait(self, done: Callable[[], bool], timeout: float, what: str) -> None:
        """Until ``done()``; says how far it got every 10 s, and in the error when it gives up."""
        start = time.monotonic()
        said = start
        while True:
            with self._lock:
                if done():
                    return
            now = time.monotonic()
            if now - said >= 10:
                said = now
                print(f"  ... waiting for {what}: {self.progress()} after {now - start:.0f} s",
                      file=sys.stderr)
            if now - start > timeout:
                raise TimeoutError(f"the precinct did not see {what} within {timeout:g} s "
                                   f"({self.progress()})")
            time.sleep(0.01)

    def progress(self) -> str:
        return f"{len(self.online)} births, {len(self.lost)} wills, {len(self.events)} alarms seen"

    def sys_snapshot(self) -> dict[str, tuple[float, int]]:
        """The broker's counters now (wait for their next 1 s update first)."""
        time.sleep(1.1)
        with self._lock:
            return dict(self._sys)

    def rate_since(self, before: dict[str, tuple[float, int]]) -> dict[str, float]:
        """Messages/s the broker received and sent since ``before``."""
        now = self.sys_snapshot()
        rates = {}
        for name, topic in (("received", SYS_RECEIVED), ("sent", SYS_SENT)):
            (t0, n0), (t1, n1) = before[topic], now[topic]
            rates[name] = (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")
        rates["total"] = rates["received"] + rates["sent"]
        return rates


def _nodelay(sock: Any) -> None:
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
