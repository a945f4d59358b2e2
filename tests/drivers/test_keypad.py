"""The keypad's keys as a volunteer types them: over a real PTY pair (socat) and loop://.

Which bytes become keys, in what order, on which thread; noise and floods kept from the core.
The serial port's own life (lost, restored, held exclusively, closed) is test_keypad_port.py.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.keypad import Keypad
from safehouse.drivers.keypad_guard import FloodGuard
from tests.rig.keypad_recorder import Recorder, fast_keypad
from tests.rig.serial_pty import SerialRig
from tests.rig.wait import wait_for

KEY_BYTES = b"0123456789*#"


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
