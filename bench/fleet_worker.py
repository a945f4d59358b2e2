"""One process of the simulated fleet: a few hundred kiosks, each a real Outbox and a real Uplink.

Each kiosk has its own SQLite outbox, its own MQTT client id, birth message and last will,
exactly as ``safehouse run`` builds them; only the hardware and the core loop are left out,
because the broker never sees them. The parent drives the process over a pipe:
``("go",)`` connects every kiosk, ``("telemetry", interval)`` starts telemetry at that
interval (each kiosk at its own phase), ``("alarm", index, event_id)`` queues a panic
event on one kiosk and wakes its uplink, ``("times",)`` returns when each alarm was queued
(``time.monotonic()``, comparable across processes), ``("stop",)`` closes everything.
"""

from __future__ import annotations

import random
import resource
import threading
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from safehouse.device import __version__
from safehouse.device.core import codes, messages
from safehouse.device.core.clock import iso_utc
from safehouse.services.outbox import Lane, Outbox
from safehouse.services.telemetry import system_readings
from safehouse.services.topics import Topics
from safehouse.services.uplink import LinkSettings, Uplink

PRECINCT = "fleet"


class FleetKiosk:
    def __init__(self, device_id: str, state_dir: Path, url: str, keepalive: int) -> None:
        self.id = device_id
        self.topics = Topics(PRECINCT, device_id)
        self.outbox = Outbox(state_dir)
        self.boot_id = str(uuid.uuid4())
        self.started = time.monotonic()
        ident = {"device_id": device_id, "precinct": PRECINCT}
        self.uplink = Uplink(
            LinkSettings(url=url, client_id=device_id, keepalive=keepalive), self.topics, self.outbox,
            birth=lambda: messages.status("online", **ident, wall=time.time(), firmware=__version__,
                                          boot_id=self.boot_id, config_digest="fleet", alliance=None),
            offline=lambda reason: messages.status("offline", **ident, wall=time.time(), reason=reason,
                                                   boot_id=self.boot_id),
            on_command=lambda _m: None, on_alliance=lambda _m: None)

    def telemetry(self) -> None:
        readings = {**system_readings(self.outbox.path.parent, self.started),
                    "outbox": {"depth": 0, "oldest_pending_age_s": None},
                    "link": {"state": self.uplink.state, "since_s": None}, "light": "steady",
                    "alarm": "idle", "clock_synced": True, "last_seq": self.outbox.last_seq, "on_duty": []}
        payload = messages.telemetry(readings, device_id=self.id, precinct=PRECINCT, wall=time.time())
        self.outbox.append(Lane.TELEMETRY, self.topics.telemetry, payload)
        self.uplink.wake()

    def alarm(self, event_id: str) -> None:
        fields = {"event_id": event_id, "device_id": self.id, "precinct": PRECINCT, "type": "panic",
                  "code": codes.PANIC, "ts": iso_utc(time.time()), "clock_synced": True,
                  "mono": round(time.monotonic(), 6), "boot_id": self.boot_id, "test": False,
                  "data": {"source": "button", "trigger": "press"}}
        self.outbox.append_event(fields, self.topics.events)
        self.uplink.wake(urgent=True)  # what the shell does after a durable panic


def _telemetry_loop(kiosks: list[FleetKiosk], interval: float, stop: threading.Event) -> None:
    """One thread for the process's telemetry: each kiosk every ``interval`` s at its own phase."""
    rng = random.Random(kiosks[0].id if kiosks else 0)
    start = time.monotonic()
    due = sorted((start + rng.uniform(0, interval), i) for i in range(len(kiosks)))
    while due and not stop.is_set():
        at, i = due.pop(0)
        if stop.wait(max(0.0, at - time.monotonic())):
            return
        kiosks[i].telemetry()
        due.append((at + interval, i))
        due.sort()


def serve(conn: Connection, ids: list[str], folder: str, url: str, keepalive: int) -> None:
    """The worker's main: build the kiosks, then obey the parent until ``stop``."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # ~5 descriptors per kiosk
    root = Path(folder)
    kiosks = [FleetKiosk(i, root / i, url, keepalive) for i in ids]
    sent: dict[str, float] = {}
    stop_telemetry = threading.Event()
    conn.send(("ready", len(kiosks)))
    while True:
        msg: tuple[Any, ...] = conn.recv()
        match msg:
            case ("go",):
                for k in kiosks:
                    k.uplink.start()
            case ("telemetry", interval):
                threading.Thread(target=_telemetry_loop, args=(kiosks, float(interval), stop_telemetry),
                                 name="telemetry", daemon=True).start()
            case ("quiet",):
                stop_telemetry.set()
                stop_telemetry = threading.Event()
            case ("alarm", index, event_id):
                sent[event_id] = time.monotonic()
                kiosks[index].alarm(event_id)
            case ("times",):
                conn.send(("times", dict(sent)))
            case ("stop",):
                stop_telemetry.set()
                for k in kiosks:
                    k.uplink.stopping.set()
                    k.uplink.wake()
                for k in kiosks:
                    k.uplink.close(timeout=2.0)
                    k.outbox.close()
                conn.send(("stopped",))
                return
