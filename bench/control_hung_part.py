"""A hung camera under a stream of `snapshots` requests: what `status` and a press cost meanwhile.

A sim daemon (camera on, microphone off, no broker: a press is answered once durable) runs as a
subprocess. First the technician's requests are timed with the camera healthy: `status`, then a
press, its ack and its resolve (a new alarm each round). Then the camera hangs
(`simulate camera hang`) and six clients keep asking for 10 snapshots of 60 s each, reconnecting
as soon as they are answered, while the same rounds are timed again. Before the control socket's
lanes (issue 18 item 14), four such requests held every worker and `status` and `press` timed
out after 10 s; the figures are each request's p95 during the hang against the same run's
healthy p95. Loopback and a private temp folder only; about ``rounds`` x 0.1 s x 2 + 15 s.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.press_latency import percentile
from safehouse.device.core.errors import ControlError
from safehouse.services.control import request

CLI = [sys.executable, "-m", "safehouse.device.cli.main"]
HAMMERS = 6  # more than the four workers the old pool had
SNAPSHOTS = b'{"cmd": "snapshots", "count": 10, "per_shot": 60}\n'
ASKS = ("status", "press", "ack", "resolve")


class _Hammer:
    """Clients that keep a `snapshots` request in flight each, counting how they are answered."""

    def __init__(self, path: Path) -> None:
        self.path, self.stopping = path, threading.Event()
        self.busy = self.other = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(HAMMERS)]

    def __enter__(self) -> _Hammer:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(2.0)  # one may sit on the hung camera: a daemon thread, left to its timeout

    def _run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.path))
                sock.sendall(SNAPSHOTS)
                line = b""
                while not line.endswith(b"\n") and not self.stopping.is_set():
                    try:
                        chunk = sock.recv(4096)
                    except TimeoutError:
                        continue
                    if not chunk:
                        break
                    line += chunk
                busy = line.startswith(b'{"ok": false, "error": "busy:')
                with self._lock:
                    self.busy += busy
                    self.other += bool(line) and not busy
            self.stopping.wait(0.02)


def _timed(path: Path, cmd: str, **args: Any) -> float:
    """Milliseconds for one answer; a refusal or a timeout counts as the full 10 s it cost."""
    t0 = time.monotonic()
    try:
        request(path, cmd, timeout=10.0, **args)
    except ControlError:
        return 10_000.0
    return (time.monotonic() - t0) * 1000


def _rounds(path: Path, rounds: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {ask: [] for ask in ASKS}
    for _ in range(rounds):
        samples["status"].append(_timed(path, "status"))
        samples["press"].append(_timed(path, "press"))
        samples["ack"].append(_timed(path, "ack", by="bench"))
        samples["resolve"].append(_timed(path, "resolve", outcome="false_alarm"))
        time.sleep(0.1)
    return samples


def run(rounds: int = 30) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-hung-", dir="/tmp"))
    sock_path = folder / "ctl.sock"
    config = folder / "config.toml"
    config.write_text(f'[device]\nid = "SH-HUNG"\nprecinct = "bench"\nhardware = "sim"\n'
                      f'state_dir = "{folder}/state"\n[control]\nsocket = "{sock_path}"\n'
                      '[camera]\nenabled = true\n[microphone]\nenabled = false\n'
                      '[alarm]\nescalate_unstaffed = false\n')
    daemon: subprocess.Popen[bytes] | None = None
    try:
        with (folder / "daemon.log").open("wb") as log:
            daemon = subprocess.Popen([*CLI, "--config", str(config), "run"], stdout=log,
                                      stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while _timed(sock_path, "status") >= 10_000.0 and time.monotonic() < deadline:
            time.sleep(0.1)
        healthy = _rounds(sock_path, rounds)
        request(sock_path, "simulate", part="camera", fault="hang")
        with _Hammer(sock_path) as hammer:
            time.sleep(1.0)  # the hung request is on the camera, the others are being refused
            hung = _rounds(sock_path, rounds)
        busy, other = hammer.busy, hammer.other
    finally:
        if daemon is not None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        shutil.rmtree(folder, ignore_errors=True)
    rows = []
    for ask in ASKS:
        during, idle = percentile(hung[ask], 0.95), percentile(healthy[ask], 0.95)
        failed = sum(1 for ms in hung[ask] if ms >= 10_000.0)
        rows.append({"figure": f"hung camera: `{ask}` p95 while snapshots are asked for", "unit": "ms",
                     "value": during, "baseline": idle, "target": 2 * idle + 50.0, "n": len(hung[ask]),
                     "note": f"p50 {percentile(hung[ask], 0.5):.1f} ms during, "
                             f"{percentile(healthy[ask], 0.5):.1f} ms healthy; {failed} timed out or "
                             f"refused; "
                             f"{HAMMERS} clients asked for snapshots meanwhile: {busy} answered busy, "
                             f"{other} otherwise; target: 2x healthy p95 + 50 ms"})
    return rows


if __name__ == "__main__":
    from bench import report

    print(report.text_table(run(int(sys.argv[1]) if len(sys.argv) > 1 else 30)))
