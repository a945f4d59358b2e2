"""Idle CPU and peak RSS of `safehouse run --sim`, against a bare Python interpreter.

Both processes run side by side for the same window, so machine noise hits both. The
baseline is `python -c` sleeping after importing nothing: what any Python service pays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(window: float = 30.0) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-idle-", dir="/tmp"))
    config = folder / "c.toml"
    config.write_text(f'[device]\nid = "IDLE"\nprecinct = "b"\nstate_dir = "{folder}/state"\n'
                      f'[control]\nsocket = "{folder}/ctl.sock"\n')
    cli = [sys.executable, "-m", "safehouse.device.cli.main", "--config", str(config)]
    daemon = subprocess.Popen([*cli, "run", "--sim"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        deadline = time.monotonic() + 15
        while not (folder / "ctl.sock").exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("daemon did not start")
            time.sleep(0.05)
        subprocess.run([*cli, "press"], check=True, capture_output=True)  # exercise it once
        subprocess.run([*cli, "resolve", "false_alarm"], check=True, capture_output=True)
        time.sleep(1.0)
        d0, b0, t0 = _cpu_seconds(daemon.pid), _cpu_seconds(bare.pid), time.monotonic()
        time.sleep(window)
        d1, b1, t1 = _cpu_seconds(daemon.pid), _cpu_seconds(bare.pid), time.monotonic()
        rss, bare_rss = _peak_rss_mb(daemon.pid), _peak_rss_mb(bare.pid)
    finally:
        for proc in (daemon, bare):
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    span = t1 - t0
    return [
        {"figure": f"idle CPU of `safehouse run --sim` over {span:.0f} s", "value": 100 * (d1 - d0) / span,
         "unit": "% of one core", "baseline": 100 * (b1 - b0) / span, "target": 1.0},
        {"figure": "peak RSS of `safehouse run --sim`", "value": rss, "unit": "MB", "baseline": bare_rss,
         "target": 60.0},
    ]
