"""Wiring of the uplink and telemetry to the core: the callbacks that cross thread boundaries.

Each callback handed to paho's thread only stamps what arrived and puts it on the core
queue; each handed to the telemetry thread only reads snapshots and appends to the outbox.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from safehouse.device import __version__
from safehouse.device.core import messages
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.inputs import AllianceAlert, PrecinctCommand
from safehouse.device.runtime.config import Config
from safehouse.services.mqtt_link import Incoming, Tls
from safehouse.services.outbox import Lane
from safehouse.services.telemetry import TelemetryTimer, system_readings
from safehouse.services.uplink import LinkSettings, Uplink

if TYPE_CHECKING:
    from safehouse.device.runtime.daemon import Daemon


def config_digest(config: Config) -> str:
    """A short fingerprint of the effective config, so the precinct sees which config runs."""
    body = json.dumps(config.as_dict(), sort_keys=True, default=str).encode()
    return hashlib.sha256(body).hexdigest()[:16]


def build_uplink(daemon: Daemon, *, digest: str) -> Uplink | None:
    cfg, clock, topics = daemon.config, daemon.clock, daemon.topics
    broker = cfg.broker
    if not broker.url:
        return None
    tls = Tls(broker.ca, broker.cert, broker.key) if broker.url.startswith("mqtts://") else None
    settings = LinkSettings(url=broker.url, client_id=cfg.device.id, keepalive=broker.keepalive,
                            protocol=broker.protocol, tls=tls, username=broker.username,
                            password=broker.password, window=broker.window)
    ident = {"device_id": cfg.device.id, "precinct": cfg.device.precinct}

    def birth() -> bytes:
        return messages.status("online", **ident, wall=clock.wall(), firmware=__version__,
                               boot_id=daemon.boot_id, config_digest=digest,
                               alliance=cfg.device.alliance or None)

    def offline(reason: str) -> bytes:
        return messages.status("offline", **ident, wall=clock.wall(), reason=reason,
                               boot_id=daemon.boot_id)

    def on_command(msg: Incoming) -> None:
        name = topics.command_name(msg.topic) or ""
        # a response topic elsewhere is ignored: the result still goes to cmd/{name}/result
        response = msg.response_topic if msg.response_topic and topics.is_result(msg.response_topic) else None
        daemon.loop.put(PrecinctCommand(name, msg.payload, msg.retain, clock.wall(), clock.synced(),
                                      response, msg.correlation))

    def on_alliance(msg: Incoming) -> None:
        daemon.loop.put(AllianceAlert(msg.payload, msg.retain))

    return Uplink(settings, topics, daemon.outbox, birth=birth, offline=offline, on_command=on_command,
                  on_alliance=on_alliance, on_state=daemon.hardware.status_led.show)


def telemetry_timer(daemon: Daemon) -> TelemetryTimer:
    cfg = daemon.config

    def collect() -> Mapping[str, Any]:
        state = daemon.loop.state
        stats = daemon.outbox.stats()
        link = daemon.link()
        return {**system_readings(cfg.device.state_dir, daemon.started),
                "outbox": {"depth": stats.depth, "oldest_pending_age_s": stats.oldest_pending_age_s,
                           "storage_fault": daemon.runner.storage_fault(),
                           "in_memory": daemon.runner.pending},
                "link": {"state": link["state"], "since_s": link.get("since_s")},
                "light": daemon.hardware.light.pattern,
                "alarm": state.alarm.phase.value if state.alarm else "idle",
                "clock_synced": daemon.clock.synced(), "last_seq": stats.last_seq,
                "on_duty": sorted(state.on_duty)}

    def publish(readings: Mapping[str, Any]) -> None:
        payload = messages.telemetry(readings, device_id=cfg.device.id, precinct=cfg.device.precinct,
                                     wall=daemon.clock.wall())
        try:
            daemon.outbox.append(Lane.TELEMETRY, daemon.topics.telemetry, payload)
        except EventLogError:  # storage failing: this reading (it names the fault) goes out from memory
            if daemon.uplink is not None:
                daemon.uplink.send(daemon.topics.telemetry, payload)
            return
        if daemon.uplink is not None:
            daemon.uplink.wake()

    return TelemetryTimer(cfg.telemetry.interval, collect, publish)
