"""`safehouse acl render` on a whole city's inventory, and on a YAML alias bomb it must refuse.

Baseline: a 2,100-kiosk inventory (one precinct group, five variables per host) rendered to a
file, in a fresh interpreter as a technician runs it. Figure: a nine-level "billion laughs"
(nine aliases per level, 9**9 strings once expanded) in a device_id, refused with exit 78.
Before the reader's caps (issue 18) the refusal printed the value: 21 s of CPU, then a
MemoryError at 1.7 GB. The child runs under a 2 GiB address-space limit and 60 s of CPU, so a
regression costs this bench a minute, not the machine its memory.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLI = [sys.executable, "-m", "safehouse.device.cli.main", "acl", "render"]


def _fleet(path: Path, kiosks: int) -> None:
    lines = ["all:", "  children:", "    north_7:", "      vars: {precinct: north-7, consoles: [console-n7]}",
             "      hosts:"]
    lines += [f"        kiosk-{i:04d}.north-7.lan: {{device_id: SH-{i:04d}, alliance: a{i % 50}, "
              f"safehouse_cert: pki/SH-{i:04d}.pem, safehouse_key: pki/SH-{i:04d}.key}}"
              for i in range(kiosks)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _laughs(path: Path, levels: int = 9) -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    host = f"h: {{precinct: p1, device_id: *l{levels - 1}}}"
    path.write_text("\n".join(lines) + f"\nall:\n  hosts:\n    {host}\n", encoding="utf-8")


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (60, 60))


def _timed(args: list[str]) -> tuple[float, int]:
    """Wall seconds and exit status of one run."""
    t0 = time.monotonic()
    done = subprocess.run([*CLI, *args], capture_output=True, timeout=120, preexec_fn=_limits, check=False)
    return time.monotonic() - t0, done.returncode


def run(repeats: int = 3) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-acl-", dir="/tmp"))
    try:
        _fleet(folder / "fleet.yml", 2100)
        _laughs(folder / "laughs.yml")
        fleet = [_timed(["--inventory", str(folder / "fleet.yml"), "--out", str(folder / "fleet.acl")])
                 for _ in range(repeats)]
        bomb = [_timed(["--inventory", str(folder / "laughs.yml")]) for _ in range(repeats)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    best_fleet, best_bomb = min(s for s, _ in fleet), min(s for s, _ in bomb)
    return [{"figure": "acl render: a 9x9 YAML alias bomb refused (exit 78)", "unit": "s", "value": best_bomb,
             "baseline": best_fleet, "target_ratio": 1.0,
             "note": f"best of {repeats}; exit {bomb[0][1]} (78 expected); baseline: a 2,100-kiosk inventory "
                     f"rendered (exit {fleet[0][1]}); before the caps: 21 s of CPU, MemoryError at 1.7 GB"}]


if __name__ == "__main__":
    from bench import report

    print(report.text_table(run()))
