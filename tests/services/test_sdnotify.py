"""systemd notify: READY=1 once the kiosk is up, WATCHDOG=1 only while the core loop lives."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config


def receive(sock: socket.socket, seconds: float) -> list[tuple[float, str]]:
    """Every datagram that arrives within ``seconds``, with its arrival time."""
    out: list[tuple[float, str]] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append((time.monotonic(), sock.recv(4096).decode()))
        except TimeoutError:
            break
    return out


def test_ready_then_watchdog_pings_which_stop_while_the_core_loop_hangs(short_dir: Path) -> None:
    path = short_dir / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "1000000"}  # WatchdogSec=1: ping each 0.5 s
        proc = DaemonProcess(write_config(short_dir), short_dir / "ctl.sock", env=env)
        t0 = time.monotonic()
        proc.start()
        try:
            first = receive(sock, 2.0)
            ready = [m for _, m in first if m.startswith("READY=1")]
            assert ready and "STATUS=alarm idle" in ready[0]
            pings = [t for t, m in first if m.startswith("WATCHDOG=1")]
            assert len(pings) >= 2 and pings[0] - t0 < 10
            proc.ok("simulate", "core", "hang", "--seconds", "3")
            receive(sock, 0.7)  # a ping already due when the loop stopped may still go out
            hung = receive(sock, 1.8)
            assert not [m for _, m in hung if m.startswith("WATCHDOG=1")]  # systemd would restart it
            after = receive(sock, 2.0)
            assert [m for _, m in after if m.startswith("WATCHDOG=1")]  # alive again: pings resume
            proc.ok("press")
            changed = receive(sock, 1.5)
            assert any("STATUS=alarm active" in m for _, m in changed)
        finally:
            proc.stop()
        assert any(m.startswith("STOPPING=1") for _, m in receive(sock, 0.5))
