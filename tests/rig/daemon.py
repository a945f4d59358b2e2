"""Run the real `safehouse run` in a subprocess and drive it with the real CLI, as a technician would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CLI = [sys.executable, "-m", "safehouse.device.cli.main"]


def cli(config: Path, *args: str, stdin: str | None = None,
        timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """`safehouse --config CONFIG ARGS` as a technician types it, in its own process (text output)."""
    return subprocess.run([*CLI, "--config", str(config), *args], input=stdin, capture_output=True,
                          text=True, timeout=timeout, check=False)


class DaemonProcess:
    def __init__(self, config: Path, socket: Path, env: dict[str, str] | None = None) -> None:
        self.config, self.socket, self.env = config, socket, env
        self.log = config.parent / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> DaemonProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([*CLI, "--config", str(self.config), "run"],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.socket.exists() and self.cli("status").returncode == 0:
                return self
            time.sleep(0.05)
        pytest.fail(f"daemon did not answer on {self.socket} within {timeout} s:\n{self.log.read_text()}")

    def cli(self, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        return cli(self.config, *args, timeout=timeout)

    def ok(self, *args: str) -> str:
        res = self.cli(*args)
        assert res.returncode == 0, f"safehouse {' '.join(args)} failed: {res.stderr}"
        return res.stdout

    def status(self) -> dict[str, Any]:
        return dict(json.loads(self.ok("status", "--json")))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.ok("events", "--json").splitlines()]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 5.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
