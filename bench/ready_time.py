"""Time from `safehouse run --sim` to systemd's READY=1, against the bare import of the daemon.

READY=1 is sent only when drivers, outbox and control socket are up, so this is how long a
kiosk restarted by its watchdog is unable to take an alarm.
"""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def ready_once(folder: Path, state: Path | None = None) -> float:
    """Seconds from starting `safehouse run --sim` to its READY=1 (state_dir: ``state``)."""
    notify = folder / "notify.sock"
    notify.unlink(missing_ok=True)
    config, state_dir = folder / "c.toml", state or folder / "state"
    config.write_text(f'[device]\nid = "READY"\nprecinct = "b"\nstate_dir = "{state_dir}"\n'
                      f'[control]\nsocket = "{folder}/ctl.sock"\n')
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(60)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "safehouse.device.cli.main", "--config", str(config),
                                 "run", "--sim"], env={**os.environ, "NOTIFY_SOCKET": str(notify)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not sock.recv(4096).startswith(b"READY=1"):
                pass
            return time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(10)


def _import_once() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import safehouse.device.runtime.daemon"], check=True)
    return time.monotonic() - t0


def run(samples: int = 5) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-bench-ready-", dir="/tmp"))
    try:
        ready = [ready_once(folder) for _ in range(samples)]
        imports = [_import_once() for _ in range(samples)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return [{"figure": "`safehouse run --sim` → READY=1 (median)", "unit": "s",
             "value": statistics.median(ready), "baseline": statistics.median(imports), "target": 2.0,
             "n": samples, "note": "baseline: a bare `python -c 'import safehouse.device.runtime.daemon'`"}]
