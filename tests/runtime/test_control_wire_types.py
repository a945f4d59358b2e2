"""The control socket takes a number only where JSON has a number: ``true`` is not 1 second.

Python's bool is an int, so ``{"cmd": "press", "hold": true}`` held the button 1 s, ``record``
recorded 1 s and ``simulate clock jump`` stepped the clock by 1 s. The config loader has always
refused a boolean for a number (``must be a number, got True``); the wire now does the same.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safehouse.services.control import ControlError, request
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config


@pytest.fixture(scope="module")
def kiosk() -> Iterator[DaemonProcess]:
    """One daemon for the module (a short path: Unix socket paths stay under 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="sh-", dir="/tmp"))
    daemon = DaemonProcess(write_config(folder), folder / "ctl.sock").start()
    try:
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(("cmd", "args"), [
    ("press", {"hold": True}),
    ("record", {"seconds": True}),
    ("simulate", {"part": "clock", "fault": "jump", "seconds": True}),
    ("simulate", {"part": "core", "fault": "hang", "seconds": True}),
    ("snapshots", {"count": True}),
    ("snapshots", {"per_shot": True}),
])
def test_a_boolean_is_not_a_number_on_the_wire(kiosk: DaemonProcess, cmd: str, args: dict[str, Any]) -> None:
    with pytest.raises(ControlError):
        request(kiosk.socket, cmd, **args)
    assert kiosk.status()["alarm"]["state"] == "idle"  # the refused press raised nothing
