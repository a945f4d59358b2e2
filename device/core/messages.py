"""Payloads of the MQTT contract other than events, built in one place (schemas in config/schemas/).

Every payload carries ``schema`` so a precinct console can dispatch on it and a future v2
can live beside v1 on the same broker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from safehouse.device.core.clock import iso_utc
from safehouse.device.core.effects import Reply


def dump(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, sort_keys=True).encode("utf-8")


def status(state: str, *, device_id: str, precinct: str, wall: float, **extra: Any) -> bytes:
    """Retained ``status``: ``online`` at birth, ``offline`` as last will or at shutdown."""
    return dump({"schema": "safehouse/v1/status", "state": state, "device_id": device_id,
                 "precinct": precinct, "ts": iso_utc(wall), **extra})


def result(reply: Reply, *, device_id: str, wall: float) -> bytes:
    return dump({"schema": "safehouse/v1/result", "device_id": device_id, "command": reply.command,
                 "id": reply.id, "ok": reply.ok, "error": reply.error, "result": dict(reply.result),
                 "ts": iso_utc(wall)})


def alliance_alert(event_id: str, *, device_id: str, precinct: str, alliance: str, wall: float) -> bytes:
    return dump({"schema": "safehouse/v1/alliance", "device_id": device_id, "precinct": precinct,
                 "alliance": alliance, "event_id": event_id, "ts": iso_utc(wall)})


def telemetry(body: Mapping[str, Any], *, device_id: str, precinct: str, wall: float) -> bytes:
    return dump({"schema": "safehouse/v1/telemetry", "device_id": device_id, "precinct": precinct,
                 "ts": iso_utc(wall), **body})
