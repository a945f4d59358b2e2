"""The acceptance report: each step's outcome, as text for the installation record and as JSON.

A step is ``pass``, ``fail``, ``skip`` (the technician skipped it), ``n/a`` (the part is not
fitted according to the config, e.g. no ``gpio.tamper``), ``warn`` (passed, with something
the technician must read), or ``not run`` (an earlier step made it pointless). The kiosk
is accepted only when every required step is ``pass``, ``warn`` or ``n/a``: a skipped step
is not a passed one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safehouse.device.core.files import make_folders

SCHEMA = "safehouse/v1/acceptance"
PASSING = frozenset({"pass", "warn", "n/a"})
KNOWN_FAILURES = ("is not a device", "lgd-nfy", "Invalid sample rate", "Operation not permitted",
                  "Failed to unshare")


@dataclass
class StepResult:
    name: str
    title: str
    status: str
    detail: str
    seconds: float = 0.0
    required: bool = True
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.status in PASSING or not self.required


@dataclass
class Report:
    device: dict[str, Any]
    started: float  # wall clock, from the injected clock
    finished: float = 0.0
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.passed for s in self.steps)

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps if not s.passed]

    def as_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "ok": self.ok, "device": self.device, "started": _iso(self.started),
                "finished": _iso(self.finished), "failed": [s.name for s in self.failed],
                "steps": [asdict(s) for s in self.steps]}

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True, default=str) + "\n"

    def to_text(self) -> str:
        dev = self.device
        lines = [f"Safe House kiosk acceptance: {'ACCEPTED' if self.ok else 'NOT ACCEPTED'}",
                 f"device {dev.get('device_id')}  precinct {dev.get('precinct')}  "
                 f"firmware {dev.get('version')}  hardware {dev.get('hardware')}",
                 f"config {dev.get('config')}  service {dev.get('service')}",
                 f"started {_iso(self.started)}  finished {_iso(self.finished)}", ""]
        width = max((len(s.title) for s in self.steps), default=10)
        for s in self.steps:
            mark = s.status.upper() + ("" if s.required else " (optional)")
            lines.append(f"{mark:<8} {s.title:<{width}}  {s.detail}")
            lines += [f"{'':<8}   {'ok  ' if c.get('ok') else 'FAIL'} {c.get('name')}: {c.get('detail')}"
                      for c in s.data.get("checks", [])]
        lines.append("")
        if self.ok:
            lines.append("every required step passed")
        else:
            lines.append("FAILED: " + "; ".join(f"{s.title}: {s.detail}" for s in self.failed))
        return "\n".join(lines) + "\n"


def report_paths(folder: Path, started: float) -> tuple[Path, Path]:
    """``acceptance-YYYYmmddTHHMMSSZ.{txt,json}`` from the run's start (UTC, injected clock)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
    return folder / f"acceptance-{stamp}.txt", folder / f"acceptance-{stamp}.json"


def write_report(report: Report, folder: Path) -> tuple[Path, Path]:
    """Write both files atomically (0640: they name the kiosk and its faults)."""
    make_folders(folder)  # explicit modes at every level, whatever the umask
    text_path, json_path = report_paths(folder, report.started)
    for path, body in ((text_path, report.to_text()), (json_path, report.to_json())):
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
        os.fchmod(fd, 0o640)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return text_path, json_path


def scan_journal(lines: list[str]) -> list[str]:
    """Lines carrying one of the known failure strings of a unit that stops the hardware."""
    return [line for line in lines if any(needle in line for needle in KNOWN_FAILURES)]


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(wall)) if wall else "-"
