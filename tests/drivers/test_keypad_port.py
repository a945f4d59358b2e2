"""The keypad's serial port as a technician sees it: unplugged, missing, replugged, held, closed.

Over a real PTY pair (socat) and loop://. A loss is reported once and its end once, the port is
held against other programs while the kiosk reads PINs from it, and close() never waits for a
backoff. Which bytes become keys is test_keypad.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.keypad import Keypad
from tests.rig.availability import unavailable
from tests.rig.keypad_recorder import Recorder, fast_keypad
from tests.rig.serial_pty import SerialRig
from tests.rig.wait import wait_for


def test_unplug_mid_entry_is_reported_once_and_replug_restores_keys(serial_rig: SerialRig) -> None:
    with fast_keypad(serial_rig.kiosk) as keypad:
        seen = Recorder(keypad)
        assert wait_for(lambda: keypad.is_connected)
        serial_rig.send(b"12")
        assert wait_for(lambda: seen.typed == "12")

        serial_rig.unplug()
        assert wait_for(lambda: len(seen.lost) == 1)
        assert not keypad.is_connected
        time.sleep(1.0)  # several reopen attempts (every 0.05-0.2 s) while it stays down
        assert len(seen.lost) == 1, f"when_lost repeated while unplugged: {seen.lost}"
        assert str(serial_rig.kiosk) in seen.lost[0], "the reason must name the port"
        assert seen.restored == 0

        serial_rig.replug()
        assert wait_for(lambda: seen.restored == 1)
        assert keypad.is_connected
        serial_rig.send(b"34#")
        assert wait_for(lambda: seen.typed == "1234#"), seen.typed
        time.sleep(0.3)
        assert (len(seen.lost), seen.restored) == (1, 1)


def test_keypad_missing_at_start_is_reported_then_restored_when_plugged(short_dir: Path) -> None:
    serial_rig = SerialRig(short_dir)
    keypad = fast_keypad(serial_rig.kiosk)
    try:
        time.sleep(0.2)  # the first open has long failed: handlers assigned late must still hear it
        seen = Recorder(keypad)
        assert wait_for(lambda: len(seen.lost) == 1)
        assert "kiosk" in seen.lost[0]
        assert not keypad.is_connected
        time.sleep(0.5)
        assert len(seen.lost) == 1

        with serial_rig:
            assert wait_for(lambda: seen.restored == 1)
            serial_rig.send(b"5\n")
            assert wait_for(lambda: seen.typed == "5")
        # Unplugged again on leaving the rig: a new loss, reported again.
        assert wait_for(lambda: len(seen.lost) == 2)
    finally:
        keypad.close()


@pytest.mark.parametrize("plugged", [True, False], ids=["connected", "in-backoff"])
def test_close_is_prompt_and_idempotent(short_dir: Path, plugged: bool) -> None:
    with SerialRig(short_dir) as serial_rig:
        if not plugged:
            serial_rig.unplug()
        # A long backoff: close() must not wait for the next reopen.
        keypad = Keypad(str(serial_rig.kiosk), reopen_min=20.0, reopen_max=30.0)
        seen = Recorder(keypad)
        assert wait_for(lambda: keypad.is_connected if plugged else len(seen.lost) == 1)
        started = time.monotonic()
        keypad.close()
        took = time.monotonic() - started
        keypad.close()
        assert took < 1.0, f"close() took {took:.3f} s"
        assert not keypad.is_connected


def test_loop_close_is_prompt() -> None:
    keypad = Keypad("loop://")
    assert wait_for(lambda: keypad.is_connected)
    started = time.monotonic()
    keypad.close()
    assert time.monotonic() - started < 1.0
    with pytest.raises(HardwareError):
        keypad.inject(b"1")


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="reopen_min"):
        Keypad("loop://", reopen_min=5.0, reopen_max=1.0)
    with pytest.raises(ValueError, match="baud"):
        Keypad("loop://", baud=0)


def test_the_port_is_opened_exclusively(serial_rig: SerialRig) -> None:
    import serial

    # another program holds the keypad first
    with serial.Serial(str(serial_rig.kiosk), exclusive=True) as other, \
            fast_keypad(serial_rig.kiosk) as keypad:
        seen = Recorder(keypad)
        assert wait_for(lambda: len(seen.lost) == 1)
        assert "exclusively lock" in seen.lost[0] and not keypad.is_connected
        other.close()
        assert wait_for(lambda: seen.restored == 1)
        with pytest.raises(serial.SerialException, match="exclusively lock"):
            serial.Serial(str(serial_rig.kiosk), exclusive=True)  # and now nobody else can take it


def test_a_plain_open_by_another_user_is_refused_while_the_keypad_holds_the_port(
        serial_rig: SerialRig) -> None:
    """pyserial's exclusive=True is a flock, which `cat` or `screen` never ask for: the port is
    also marked TIOCEXCL, so such a program (not root) cannot read PIN digits off the line."""
    if os.geteuid() != 0:
        unavailable("needs root to run the other program as another user")
    device = os.path.realpath(serial_rig.kiosk)
    os.chmod(device, 0o666)  # as a dialout member could open it
    probe = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
             f"import os\ntry:\n    os.close(os.open({device!r}, os.O_RDONLY | os.O_NOCTTY))\n"
             "    print('opened')\nexcept OSError as exc:\n    print(exc.strerror)"]

    def other_program() -> str:
        return subprocess.run(probe, capture_output=True, text=True, timeout=30, check=True).stdout.strip()

    assert other_program() == "opened"  # nobody holds it yet
    with fast_keypad(serial_rig.kiosk) as keypad:
        assert wait_for(lambda: keypad.is_connected)
        assert other_program() == "Device or resource busy"
        seen = Recorder(keypad)
        serial_rig.send(b"12#")
        assert wait_for(lambda: seen.typed == "12#")
    assert other_program() == "opened"  # the mark went with the daemon's close (a pty keeps it)


def test_a_keypad_plugged_in_long_after_start_is_opened_at_once(short_dir: Path) -> None:
    """Hotplug: while the device node is absent the reader polls for it, it does not back off."""
    serial_rig = SerialRig(short_dir)
    with Keypad(str(serial_rig.kiosk), reopen_min=0.25, reopen_max=30.0) as keypad:
        seen = Recorder(keypad)
        assert wait_for(lambda: len(seen.lost) == 1)
        time.sleep(4.0)  # with backoff this would now wait 0.25 * 2**4 s and more
        with serial_rig:
            plugged = time.monotonic()
            assert wait_for(lambda: seen.restored == 1)
            assert time.monotonic() - plugged < 1.5


def test_a_loss_the_owner_could_not_take_yet_is_reported_again(short_dir: Path) -> None:
    """The daemon assigns handlers before its core queue exists: the first call may raise."""
    calls: list[str] = []

    def when_lost(reason: str) -> None:
        calls.append(reason)
        if len(calls) == 1:
            raise AttributeError("'Daemon' object has no attribute 'loop'")

    with fast_keypad(short_dir / "absent") as keypad:
        keypad.when_lost = when_lost
        assert wait_for(lambda: len(calls) == 2)
        time.sleep(0.5)
        assert len(calls) == 2, "reported again once, then not repeated"
