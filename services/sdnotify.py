"""systemd's notify protocol: READY=1 once the kiosk can take an alarm, WATCHDOG=1 only while
the core loop is alive, STATUS= for `systemctl status`.

The watchdog is the point: if the core loop wedges (a bug, a driver call that never
returns), the pings stop, systemd kills and restarts the daemon, and the alarm that was open
is resumed from the outbox. Pinging from a timer alone would hide a wedged loop.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable

from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd (no NOTIFY_SOCKET) or it failed."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        _LOG.warning("sd_notify %r failed: %s", message.split("=", 1)[0], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of systemd's WatchdogSec (from WATCHDOG_USEC), if this process is the one watched."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(0.05, int(usec) / 2_000_000)
    except ValueError:
        return None


class Watchdog(Worker):
    """Pings WATCHDOG=1 every interval while ``heartbeat_age()`` stays under the interval."""

    def __init__(self, interval: float, heartbeat_age: Callable[[], float],
                 status: Callable[[], str]) -> None:
        super().__init__(name="watchdog", join_seconds=1.0)
        self._interval, self._age, self._status = interval, heartbeat_age, status
        self._last_status = ""

    def run(self) -> None:
        while not self.stopping.wait(self._interval):
            age = self._age()
            if age > self._interval:
                _LOG.error("core loop silent for %.1f s: withholding the watchdog ping", age)
                continue
            status = self._status()
            message = "WATCHDOG=1" + (f"\nSTATUS={status}" if status != self._last_status else "")
            if notify(message):
                self._last_status = status
