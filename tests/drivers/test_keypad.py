"""The keypad as a volunteer and a technician see it: over a real PTY pair (socat) and loop://."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.keypad import Keypad
from safehouse.drivers.keypad_guard import FloodGuard
from tests.rig.availability import unavailable
from tests.rig.serial_pty import SerialRig
from tests.rig.wait import wait_for

KEY_BYTES = b"0123456789*#"


class Recorder:
    """What the daemon would see: keys, losses and restorations, in order."""

    def __init__(self, keypad: Keypad) -> None:
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.lost: list[str] = []
        self.restored = 0
        self.noise: list[int] = []
        self.floods: list[tuple[bool, str, int]] = []
        self.threads: set[str] = set()
        keypad.when_key = self.on_key
        keypad.when_lost = self.on_lost
        keypad.when_restored = self.on_restored
        keypad.when_noise = self.on_noise
        keypad.when_flood = self.on_flood

    def on_noise(self, count: int) -> None:
        with self.lock:
            self.noise.append(count)

    def on_flood(self, started: bool, detail: str, discarded: int) -> None:
        with self.lock:
            self.floods.append((started, detail, discarded))

    def on_key(self, key: str) -> None:
        with self.lock:
            self.keys.append(key)
            self.threads.add(threading.current_thread().name)

    def on_lost(self, reason: str) -> None:
        with self.lock:
            self.lost.append(reason)

    def on_restored(self) -> None:
        with self.lock:
            self.restored += 1

    @property
    def typed(self) -> str:
        with self.lock:
            return "".join(self.keys)


def fast_keypad(port: str | Path) -> Keypad:
    return Keypad(str(port), reopen_min=0.05, reopen_max=0.2)


def test_single_keys_and_lines_arrive_in_order(serial_rig: SerialRig,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with fast_keypad(serial_rig.kiosk) as keypad:
        seen = Recorder(keypad)
        assert wait_for(lambda: keypad.is_connected)
        for key in b"735":  # a keypad that sends one byte per key
            serial_rig.send(bytes([key]))
        serial_rig.send(b"1#\r\n")  # one that sends whole lines, CRLF ...
        serial_rig.send(b"*0\n9\r")  # ... LF or CR alone
        assert wait_for(lambda: len(seen.typed) >= 8), seen.typed
        time.sleep(0.05)
        assert seen.keys == list("7351#*09")
        assert keypad.keys == 8
        assert keypad.rejected_bytes == 0
        assert seen.lost == [] and seen.restored == 0
        assert seen.threads == {f"keypad-{serial_rig.kiosk}"}, "when_key must run on the reader thread"
    assert "7351" not in caplog.text and "'7'" not in caplog.text, "key values (PINs) were logged"


def test_noise_bytes_are_counted_and_never_reach_when_key(serial_rig: SerialRig) -> None:
    with fast_keypad(serial_rig.kiosk) as keypad:
        seen = Recorder(keypad)
        assert wait_for(lambda: keypad.is_connected)
        serial_rig.send(b"\x00A\xff")
        serial_rig.send(b"4\x1b[B2\r\n")
        assert wait_for(lambda: keypad.rejected_bytes == 6 and keypad.keys == 2)
        time.sleep(0.05)
        assert seen.keys == ["4", "2"]
        assert sum(seen.noise) == 6, "noise arrives as counts (one per run of it in a read)"
        assert keypad.rejected_bytes == 6 and seen.floods == []


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


def test_simulated_keypad_takes_injected_keys() -> None:
    with Keypad("loop://") as keypad:
        seen = Recorder(keypad)
        keypad.inject(b"9#\r\n")
        keypad.inject(b"*")
        assert wait_for(lambda: seen.typed == "9#*")
        assert keypad.is_connected
        assert keypad.rejected_bytes == 0


def test_inject_into_a_real_port_is_refused(short_dir: Path) -> None:
    with Keypad(str(short_dir / "nothing"), reopen_min=0.05, reopen_max=0.1) as keypad, \
            pytest.raises(HardwareError, match="only into the simulated keypad"):
        keypad.inject(b"1")


def test_a_failing_handler_does_not_stop_the_reader() -> None:
    got: list[str] = []

    def handler(key: str) -> None:
        if key == "1":
            raise KeyError(key)
        got.append(key)

    with Keypad("loop://") as keypad:
        keypad.when_key = handler
        keypad.inject(b"213")
        assert wait_for(lambda: got == ["2", "3"])
        assert keypad.keys == 3


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


def test_arbitrary_byte_streams_deliver_only_keys_in_order() -> None:
    unlimited = FloodGuard(max_keys=10**9, max_entries=10**9, max_noise=10**9)
    with Keypad("loop://", guard=unlimited) as keypad:
        seen = Recorder(keypad)
        expected: list[str] = []
        rejected = 0

        @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(st.lists(st.binary(max_size=40), max_size=6))
        def check(chunks: list[bytes]) -> None:
            nonlocal rejected
            for chunk in chunks:
                keypad.inject(chunk)
                expected.extend(chr(b) for b in chunk if b in KEY_BYTES)
                rejected += sum(1 for b in chunk if b not in KEY_BYTES and b not in b"\r\n")
            assert wait_for(lambda: keypad.keys == len(expected) and keypad.rejected_bytes == rejected)
            assert seen.keys == expected
            assert keypad.is_connected

        check()
        assert set(seen.typed) <= set(KEY_BYTES.decode())


def test_a_flood_on_the_line_is_one_report_no_keys_and_keys_work_once_it_is_quiet(
        serial_rig: SerialRig) -> None:
    guard = FloodGuard(ignore_s=0.5)
    with Keypad(str(serial_rig.kiosk), reopen_min=0.05, reopen_max=0.2, guard=guard) as keypad:
        seen = Recorder(keypad)
        assert wait_for(lambda: keypad.is_connected)
        serial_rig.send(b"1234567890" * 20_000)  # 200 KB of digits, no #
        serial_rig.send(bytes(range(256)) * 100)  # then 25.6 KB of everything
        assert wait_for(lambda: keypad.discarded_bytes >= 200_000 + 25_600 - 4096)
        assert seen.keys == [] or len(seen.keys) <= 30, "a flood reached the core"
        assert wait_for(lambda: len(seen.floods) == 2, timeout=5)
        (started, why, _), (ended, took, discarded) = seen.floods
        assert started and not ended and "keys within 1 s" in why and took.endswith(" s")
        assert discarded >= 200_000, seen.floods
        before = len(seen.keys)
        serial_rig.send(b"4711#")
        assert wait_for(lambda: seen.typed[before:] == "4711#")
        assert not keypad.flooding and len(seen.floods) == 2


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


def test_an_idle_reader_reads_with_no_timer_and_a_flood_gets_one_until_it_is_over() -> None:
    """Lighter at rest: an idle reader blocks with no read timeout (no wake-ups at all); only a
    flood episode, which must end once the line is quiet, gives the read a timeout."""
    import serial

    ports: list[serial.SerialBase] = []

    def factory(*args: object, **kwargs: object) -> serial.SerialBase:
        ports.append(serial.serial_for_url(*args, **kwargs))
        return ports[-1]

    with Keypad("loop://", serial_factory=factory, guard=FloodGuard(ignore_s=0.5)) as keypad:
        seen = Recorder(keypad)
        keypad.inject(b"1")
        assert wait_for(lambda: seen.typed == "1")
        assert ports[0].timeout is None
        keypad.inject(b"1234567890" * 10)  # a flood: 100 keys at once
        assert wait_for(lambda: keypad.flooding)
        assert wait_for(lambda: len(seen.floods) == 2)  # its end, noticed without a byte arriving
        assert wait_for(lambda: ports[0].timeout is None)
    assert not ports[0].is_open
