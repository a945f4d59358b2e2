"""A serial cable for tests: a socat PTY pair whose two ends are stable links in a folder.

``rig.kiosk`` is the end the firmware opens, ``rig.device`` the keypad's end. ``unplug()``
stops socat (by its PID), which is what pulling the USB cable looks like to the reader:
``SerialException: device reports readiness to read but returned no data``; ``replug()``
starts socat again under the same link names. In CI a missing socat fails the test.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import serial

from tests.rig.availability import require_tool

_START_SECONDS = 5.0


class SerialRig:
    """socat -d -d pty,raw,echo=0,link=DIR/kiosk pty,raw,echo=0,link=DIR/device."""

    def __init__(self, folder: Path) -> None:
        self._socat = require_tool("socat")
        self.folder = folder
        self.kiosk = folder / "kiosk"
        self.device = folder / "device"
        self._log = folder / "socat.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def is_plugged(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def plug(self) -> None:
        """Start socat and wait until both links exist and data flows."""
        if self.is_plugged:
            raise RuntimeError("the serial rig is already plugged in")
        for link in (self.kiosk, self.device):  # left over by a socat that was SIGKILLed
            link.unlink(missing_ok=True)
        with self._log.open("ab") as log:
            self._proc = subprocess.Popen(
                [
                    self._socat, "-d", "-d",
                    f"pty,raw,echo=0,link={self.kiosk}",
                    f"pty,raw,echo=0,link={self.device}",
                ],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            )
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"socat exited with {self._proc.returncode}: {self._log.read_text()}")
            if (
                self.kiosk.exists()
                and self.device.exists()
                and b"starting data transfer loop" in self._log.read_bytes()
            ):
                return
            time.sleep(0.01)
        self.unplug()
        raise RuntimeError(
            f"socat did not create its links within {_START_SECONDS} s: {self._log.read_text()}"
        )

    replug = plug

    def unplug(self) -> None:
        """Stop socat by its PID; both links disappear. Safe to repeat."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for link in (self.kiosk, self.device):
            link.unlink(missing_ok=True)

    def send(self, data: bytes) -> None:
        """Write ``data`` from the keypad's end, as a keypad would."""
        with serial.Serial(str(self.device), timeout=1) as end:
            end.write(data)
            end.flush()

    def __enter__(self) -> Self:
        self.plug()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.unplug()
