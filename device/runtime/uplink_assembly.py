"""The uplink and the telemetry timer, built from config: the callbacks that cross thread boundaries.

Each callback handed to paho's thread only stamps what arrived and puts it on the core's
inbox; each handed to the telemetry thread only reads snapshots and appends to the outbox.
Without a broker URL the kiosk is offline by design: ``NoUplink`` stands in for the uplink,
so nothing downstream checks for a missing one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from safehouse.device import __version__
from safehouse.device.core import messages
from safehouse.device.core.clock import Clock
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.inputs import AllianceAlert, Input, PrecinctCommand
from safehouse.device.core.state import CoreState
from safehouse.device.runtime.config import Config
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.mqtt_link import Incoming, Tls
from safehouse.services.outbox import Lane, Outbox
from safehouse.services.telemetry import TelemetryTimer, system_readings
from safehouse.services.topics import Topics
from safehouse.services.uplink import LinkSettings, Uplink


class Link(Protocol):
    """The uplink as the rest of the kiosk sees it; ``NoUplink`` when offline by design."""

    on_sent: Callable[[str], None]

    def start(self) -> None: ...
    def close(self, timeout: float = 2.0) -> None: ...
    def wake(self, urgent: bool = False) -> None: ...
    def send(self, topic: str, payload: bytes, correlation: bytes | None = None) -> None: ...
    def view(self) -> dict[str, Any]: ...
    def round_trip(self, timeout: float) -> float: ...


class NoUplink:
    """No ``broker.url``: nothing is sent, ``view()`` says "disabled" (status, LED, selftest)."""

    def __init__(self) -> None:
        self.on_sent: Callable[[str], None] = lambda _e: None

    def start(self) -> None:
        """Nothing to connect to."""

    def close(self, timeout: float = 2.0) -> None:
        """Nothing to close."""

    def wake(self, urgent: bool = False) -> None:
        """Nothing to wake."""

    def send(self, topic: str, payload: bytes, correlation: bytes | None = None) -> None:
        """Nowhere to send."""

    def view(self) -> dict[str, Any]:
        return {"state": "disabled", "broker": None}

    def round_trip(self, timeout: float) -> float:
        raise RuntimeError("no broker configured")


def config_digest(config: Config) -> str:
    """A short fingerprint of the effective config, so the precinct sees which config runs."""
    body = json.dumps(config.as_dict(), sort_keys=True, default=str).encode()
    return hashlib.sha256(body).hexdigest()[:16]


def build_uplink(config: Config, *, clock: Clock, topics: Topics, boot_id: str, outbox: Outbox,
                 memory: MemoryAlarms, put: Callable[[Input], None],
                 on_state: Callable[[str], None]) -> Link:
    """``memory``: alarms the outbox could not write, published from there; ``put``: the core's
    inbox; ``on_state``: the link state, for the status LED."""
    broker = config.broker
    if not broker.url:
        return NoUplink()
    digest = config_digest(config)
    tls = Tls(broker.ca, broker.cert, broker.key) if broker.url.startswith("mqtts://") else None
    settings = LinkSettings(url=broker.url, client_id=config.device.id, keepalive=broker.keepalive,
                            protocol=broker.protocol, tls=tls, username=broker.username,
                            password=broker.password, window=broker.window)
    ident = {"device_id": config.device.id, "precinct": config.device.precinct}

    def birth() -> bytes:
        return messages.status("online", **ident, wall=clock.wall(), firmware=__version__,
                               boot_id=boot_id, config_digest=digest,
                               alliance=config.device.alliance or None)

    def offline(reason: str) -> bytes:
        return messages.status("offline", **ident, wall=clock.wall(), reason=reason, boot_id=boot_id)

    def on_command(msg: Incoming) -> None:
        name = topics.command_name(msg.topic) or ""
        # a response topic elsewhere is ignored: the result still goes to cmd/{name}/result
        response = msg.response_topic if msg.response_topic and topics.is_result(msg.response_topic) else None
        put(PrecinctCommand(name, msg.payload, msg.retain, clock.wall(), clock.synced(), response,
                          msg.correlation))

    def on_alliance(msg: Incoming) -> None:
        put(AllianceAlert(msg.payload, msg.retain))

    uplink = Uplink(settings, topics, outbox, birth=birth, offline=offline, on_command=on_command,
                    on_alliance=on_alliance, on_state=on_state)
    uplink.memory = memory
    return uplink


class Playing(Protocol):
    @property
    def pattern(self) -> str: ...


class Core(Protocol):
    @property
    def state(self) -> CoreState: ...


def telemetry_timer(config: Config, *, clock: Clock, started: float, core: Core,
                    storage_fault: Callable[[], str | None], in_memory: Callable[[], int],
                    outbox: Outbox, uplink: Link, light: Playing, topic: str) -> TelemetryTimer:
    """Readings every ``telemetry.interval`` seconds: into the outbox, or (storage failing) sent
    from memory; ``core`` holds the core's snapshot, ``in_memory`` counts events not yet written."""
    state_dir: Path = config.device.state_dir

    def collect() -> Mapping[str, Any]:
        now = core.state
        stats = outbox.stats()
        link = uplink.view()
        return {**system_readings(state_dir, started),
                "outbox": {"depth": stats.depth, "oldest_pending_age_s": stats.oldest_pending_age_s,
                           "storage_fault": storage_fault(), "in_memory": in_memory()},
                "link": {"state": link["state"], "since_s": link.get("since_s"),
                         "refused": link.get("refused", 0)},
                "light": light.pattern,
                "alarm": now.alarm.phase.value if now.alarm else "idle",
                "clock_synced": clock.synced(), "last_seq": stats.last_seq,
                "on_duty": sorted(now.on_duty)}

    def publish(readings: Mapping[str, Any]) -> None:
        payload = messages.telemetry(readings, device_id=config.device.id, precinct=config.device.precinct,
                                     wall=clock.wall())
        try:
            outbox.append(Lane.TELEMETRY, topic, payload)
        except EventLogError:  # storage failing: this reading (it names the fault) goes out from memory
            uplink.send(topic, payload)
            return
        uplink.wake()

    return TelemetryTimer(config.telemetry.interval, collect, publish)
