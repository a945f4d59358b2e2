"""Periodic telemetry: the kiosk's health, queued in the outbox's lowest-priority lane.

Telemetry waits behind every event while offline, and only the newest ``telemetry_keep``
are kept, so a long outage never delays an alarm and never fills the disk with stale health.
Readings that a machine cannot give (no thermal zone off a Pi) are ``null``, never invented.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safehouse.device.core.settings import in_range, setting
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)
THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature() -> float | None:
    try:
        return round(int(THERMAL.read_text().strip()) / 1000.0, 1)
    except (OSError, ValueError):
        return None


def memory() -> dict[str, int | None]:
    info: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                info[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError):
        pass
    return {"total_bytes": info.get("MemTotal"), "available_bytes": info.get("MemAvailable")}


def system_readings(state_dir: Path, started: float) -> dict[str, Any]:
    """Host readings; ``started`` is the daemon's monotonic start time."""
    try:
        disk = shutil.disk_usage(state_dir)
        disk_view: dict[str, int | None] = {"free_bytes": disk.free, "total_bytes": disk.total}
    except OSError:
        disk_view = {"free_bytes": None, "total_bytes": None}
    load1, load5, load15 = os.getloadavg()
    return {"uptime_s": round(time.monotonic() - started, 1), "cpu_temp_c": cpu_temperature(),
            "load": [round(load1, 2), round(load5, 2), round(load15, 2)], "memory": memory(),
            "disk": disk_view}


class TelemetryTimer(Worker):
    """Calls ``publish(readings)`` every ``interval`` seconds on its own thread."""

    def __init__(self, interval: float, collect: Callable[[], Mapping[str, Any]],
                 publish: Callable[[Mapping[str, Any]], None]) -> None:
        super().__init__(name="telemetry", join_seconds=2.0)
        self._interval, self._collect, self._publish = interval, collect, publish

    def run(self) -> None:
        while not self.stopping.wait(self._interval):
            try:
                self._publish(self._collect())
            except Exception:
                _LOG.exception("telemetry could not be queued; trying again next interval")


@dataclass(frozen=True)
class TelemetrySettings:
    """[telemetry]: how often the kiosk reports its health."""

    interval: float = setting(60.0, "seconds between telemetry messages", in_range(1.0, 86_400.0))
