"""The service manager `safehouse accept` restarts and reads: systemd on a Pi, a subprocess in sim.

Acceptance must test the kiosk as systemd runs it — the unit's sandbox, user and device
list — so on a Pi it restarts the unit, waits for systemd to see READY=1 (a ``Type=notify``
unit is ``active``/``running`` only after it) and reads the unit's journal from a cursor
taken before the restart: systemd's own complaints about the unit (``DeviceAllow=... is not
a device``, ``Failed to unshare``) are logged there with the daemon's lines.

In simulation the same protocol is played by a subprocess: ``safehouse run`` on the sim
config with ``NOTIFY_SOCKET`` bound here, its output in a log file read as the "journal".
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from safehouse.device.core.errors import ControlError, SafehouseError
from safehouse.device.core.files import make_folders
from safehouse.services.control import request

_LOG = logging.getLogger(__name__)
POLL = 0.25
STOP_WAIT = 10.0

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


class AcceptanceError(SafehouseError):
    """The acceptance cannot go on (e.g. the unit cannot be restarted); the message says why."""


class ServiceManager(Protocol):
    name: str

    def restart(self) -> None: ...
    def wait_ready(self, timeout: float) -> tuple[bool, str]: ...
    def journal(self) -> list[str]: ...
    def still_up(self) -> tuple[bool, str]: ...
    def main_pid(self) -> int | None: ...
    def close(self) -> None: ...


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, errors="replace", timeout=120,
                          check=False)


class Systemd:
    """``systemctl``/``journalctl`` on the unit (default ``safehouse``)."""

    def __init__(self, unit: str = "safehouse", run: Runner = _run) -> None:
        self.name = f"systemd unit {unit}"
        self._unit, self._run = unit, run
        self._cursor: str | None = None
        self._main: tuple[str, str] | None = None  # MainPID, NRestarts once ready
        self._before = ""  # InvocationID of the run the restart replaces

    def _ok(self, *argv: str) -> str:
        try:
            res = self._run(argv)
        except (OSError, subprocess.SubprocessError) as exc:
            raise AcceptanceError(f"{argv[0]} failed: {exc} (is this a systemd machine?)") from exc
        if res.returncode != 0:
            raise AcceptanceError(f"`{' '.join(argv)}` failed ({res.returncode}): "
                                  f"{(res.stderr or res.stdout).strip()[-300:]} (run as root: sudo)")
        return res.stdout

    def restart(self) -> None:
        # the newest entry of the whole journal: everything after it is from this acceptance on
        out = self._ok("journalctl", "-n", "1", "-o", "export", "--no-pager")
        self._cursor = next((line.split("=", 1)[1] for line in out.splitlines()
                             if line.startswith("__CURSOR=")), None)
        self._before = self._show().get("InvocationID", "")
        # reloaded first: systemd re-reads the installed unit and logs its complaints about it now
        self._ok("systemctl", "daemon-reload")
        self._ok("systemctl", "restart", "--no-block", self._unit)

    def _show(self) -> dict[str, str]:
        out = self._ok("systemctl", "show", self._unit, "-p", "ActiveState", "-p", "SubState", "-p",
                       "Result", "-p", "StatusText", "-p", "MainPID", "-p", "NRestarts", "-p", "InvocationID")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def wait_ready(self, timeout: float) -> tuple[bool, str]:
        deadline = time.monotonic() + timeout
        time.sleep(POLL)  # --no-block: let systemd take the job before the first look
        props: dict[str, str] = {}
        while time.monotonic() < deadline:
            props = self._show()
            state, sub = props.get("ActiveState"), props.get("SubState")
            # the run the restart started, not the one before it (its state lingers a moment)
            fresh = not self._before or props.get("InvocationID", "") != self._before
            if state == "active" and sub == "running" and fresh:
                self._main = (props.get("MainPID", ""), props.get("NRestarts", ""))
                return True, f"READY=1 seen by systemd: {props.get('StatusText') or 'running'}"
            if fresh and (state == "failed" or sub == "auto-restart"):
                return False, (f"the unit failed ({state}/{sub}, result {props.get('Result')}); "
                               f"journalctl -u {self._unit} -e says why")
            time.sleep(POLL)
        return False, (f"no READY=1 within {timeout:g} s (ActiveState {props.get('ActiveState')}, "
                       f"SubState {props.get('SubState')})")

    def journal(self) -> list[str]:
        args = ["journalctl", "-u", self._unit, "-o", "cat", "--no-pager"]
        args += [f"--after-cursor={self._cursor}"] if self._cursor else ["-b"]
        return self._ok(*args).splitlines()

    def still_up(self) -> tuple[bool, str]:
        props = self._show()
        now = (props.get("MainPID", ""), props.get("NRestarts", ""))
        if props.get("ActiveState") != "active" or now != self._main:
            return False, (f"the unit restarted or stopped during the acceptance (MainPID/NRestarts "
                           f"{self._main} -> {now}, {props.get('ActiveState')}/{props.get('SubState')})")
        return True, f"the same process (MainPID {now[0]}) ran the whole acceptance, no restarts"

    def main_pid(self) -> int | None:
        """The unit's main process once READY=1 was seen (None before)."""
        return int(self._main[0]) if self._main and self._main[0].isdigit() else None

    def close(self) -> None:
        """The unit keeps running: it is the kiosk."""


class SimService:
    """The sim kiosk as a child process: `safehouse run` with our own NOTIFY_SOCKET."""

    def __init__(self, config: Path, socket_path: Path, log: Path) -> None:
        self.name = "simulated kiosk (safehouse run, sim)"
        self._config, self._control, self._log = config, socket_path, log
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix="sh-accept-", dir="/tmp"))
        self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._notify.bind(str(self._tmp / "notify"))
        self._mark = 0

    def restart(self) -> None:
        if self._proc is None:
            with contextlib.suppress(ControlError):
                request(self._control, "status", timeout=2.0)
                raise AcceptanceError(f"a kiosk daemon already answers on {self._control}: stop it "
                                      "first; in simulation the acceptance starts its own")
        self._stop()
        make_folders(self._log.parent)  # explicit modes, and the log 0640, whatever the umask
        self._mark = self._log.stat().st_size if self._log.exists() else 0
        env = {**os.environ, "NOTIFY_SOCKET": str(self._tmp / "notify")}
        env.pop("WATCHDOG_USEC", None)
        with os.fdopen(os.open(self._log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640),
                       "ab") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "safehouse.device.cli.main", "--config", str(self._config), "run"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)

    def wait_ready(self, timeout: float) -> tuple[bool, str]:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            self._notify.settimeout(min(POLL, left))
            try:
                message = self._notify.recv(4096).decode("utf-8", "replace")
            except TimeoutError:
                message = ""
            fields = dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
            if fields.get("READY") == "1":
                return True, f"READY=1 from pid {self._proc.pid}: {fields.get('STATUS', 'running')}"
            if self._proc.poll() is not None:
                return False, f"the daemon exited with status {self._proc.returncode} before READY=1"
        return False, f"no READY=1 within {timeout:g} s"

    def journal(self) -> list[str]:
        if not self._log.exists():
            return []
        with self._log.open("rb") as f:
            f.seek(self._mark)
            return f.read().decode("utf-8", "replace").splitlines()

    def still_up(self) -> tuple[bool, str]:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            return False, f"the daemon stopped during the acceptance (exit status {code})"
        return True, f"the same process (pid {self._proc.pid}) ran the whole acceptance"

    def main_pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            _LOG.warning("the simulated kiosk did not stop within %.0f s: killing it", STOP_WAIT)
            proc.kill()
            proc.wait(STOP_WAIT)

    def close(self) -> None:
        """Stop the kiosk this acceptance started."""
        self._stop()
        self._notify.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
