"""The keypad lockout survives a restart: on disk (services/lockout_store.py) and in the real daemon.

Every clock here is injected: monotonic and wall time move only when a test says so, and a
reboot is a new boot id with monotonic time starting again near zero.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from safehouse.device.core.state import KeypadState
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon
from safehouse.services.lockout_store import FILE, LockoutStore
from safehouse.services.outbox import read_events
from safehouse.services.volunteers_edit import add
from tests.rig.clock import FakeClock
from tests.rig.kiosk_config import write_config

BOOT, OTHER_BOOT = "boot-a", "boot-b"
BUTTON = 22
START = 5000.0  # the monotonic clock when a test begins: well after boot


def locked_for(keypad: KeypadState, clock: FakeClock) -> float:
    return 0.0 if keypad.locked_until is None else round(keypad.locked_until - clock.mono(), 3)


def test_same_boot_restart_keeps_the_count_the_level_and_the_exact_end(tmp_path: Path) -> None:
    clock = FakeClock(mono=START)
    LockoutStore(tmp_path, clock=clock, boot_id=BOOT).keep(0, 3, clock.mono() + 240, 240)
    clock.advance(100)  # the daemon restarts 100 s into a 240 s lockout
    restored = LockoutStore(tmp_path, clock=clock, boot_id=BOOT).restore(KeypadState())
    assert (restored.lockouts, restored.failures, locked_for(restored, clock)) == (3, 0, 140)
    clock.advance(140)
    assert LockoutStore(tmp_path, clock=clock, boot_id=BOOT).restore(KeypadState()).locked_until is None
    mode = stat.S_IMODE((tmp_path / FILE).stat().st_mode)
    assert mode == 0o600 and [p.name for p in tmp_path.iterdir()] == [FILE]  # no temp file left


def test_wrong_pins_short_of_a_lockout_are_kept_too(tmp_path: Path) -> None:
    clock = FakeClock(mono=START)
    LockoutStore(tmp_path, clock=clock, boot_id=BOOT).keep(4, 1, None, 0)
    restored = LockoutStore(tmp_path, clock=clock, boot_id=OTHER_BOOT).restore(KeypadState())
    assert (restored.failures, restored.lockouts, restored.locked_until) == (4, 1, None)


def test_after_a_reboot_a_synced_record_ends_by_the_wall_clock(tmp_path: Path) -> None:
    before = FakeClock(mono=START)
    LockoutStore(tmp_path, clock=before, boot_id=BOOT).keep(0, 1, before.mono() + 60, 60)
    after = FakeClock(before.wall() + 25, mono=12.0)  # power back 25 s later, NTP synced
    restored = LockoutStore(tmp_path, clock=after, boot_id=OTHER_BOOT).restore(KeypadState())
    assert locked_for(restored, after) == 35


def test_after_a_reboot_before_ntp_the_lockout_is_never_shorter(tmp_path: Path) -> None:
    before = FakeClock(mono=START)
    LockoutStore(tmp_path, clock=before, boot_id=BOOT).keep(0, 2, before.mono() + 120, 120)
    # no RTC: the wall clock comes back at fake-hwclock's last save, an hour behind
    after = FakeClock(before.wall() - 3600, mono=9.0, synced=False)
    restored = LockoutStore(tmp_path, clock=after, boot_id=OTHER_BOOT).restore(KeypadState())
    assert locked_for(restored, after) == 120, "capped at what was left, never longer"


def test_a_record_written_before_ntp_runs_its_remaining_length_after_a_reboot(tmp_path: Path) -> None:
    before = FakeClock(86_400.0, mono=START, synced=False)  # 1970: its wall time means nothing
    before.advance(0)
    store = LockoutStore(tmp_path, clock=before, boot_id=BOOT)
    store.keep(0, 1, before.mono() + 60, 60)
    before.advance(50)
    after = FakeClock(1_800_000_000.0, mono=7.0)  # synced now, decades "later"
    restored = LockoutStore(tmp_path, clock=after, boot_id=OTHER_BOOT).restore(KeypadState())
    assert locked_for(restored, after) == 60


NEGATIVE_COUNT = (b'{"version": 1, "failures": -1, "lockouts": 0, "locked_s": 0, "boot_id": "x", '
                  b'"mono_until": null, "wall_until": null, "synced": true}')
LEVEL_65 = (b'{"version": 1, "failures": 2, "lockouts": 65, "locked_s": 3600, "boot_id": "boot-a", '
            b'"mono_until": 8600, "wall_until": 1800003600, "synced": true}')


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"version": 1}', NEGATIVE_COUNT, b"\xff" * 10_000,
                                     LEVEL_65[:60], b"[" * 4000, b'{"version": 1, "lockouts": 1e999}'],
                         ids=["empty", "cut", "list", "fields", "negative", "binary", "truncated", "deep",
                              "inf"])
def test_a_damaged_record_keeps_the_keypad_locked_at_the_first_level_and_is_reported(
        tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """It used to mean "starting unlocked": one garbled byte, then unlimited guesses."""
    (tmp_path / FILE).write_bytes(content)
    clock = FakeClock(mono=START)
    store = LockoutStore(tmp_path, clock=clock, boot_id=BOOT)
    with caplog.at_level(logging.ERROR):
        restored = store.restore(KeypadState())
    assert (restored.lockouts, restored.failures, locked_for(restored, clock)) == (1, 0, 60)
    assert "cannot be trusted" in caplog.text and str(tmp_path / FILE) in caplog.text
    assert store.damage is not None and store.damage.file == FILE  # a storage_damaged report
    [moved] = (tmp_path / "quarantine").iterdir()
    assert moved.read_bytes() == content and getattr(store.damage, "quarantined", None) == moved
    clock.advance(30)  # a second restart finds the fresh record: still locked, not reset
    again = LockoutStore(tmp_path, clock=clock, boot_id=BOOT).restore(KeypadState())
    assert (again.lockouts, locked_for(again, clock)) == (1, 30)


def test_a_number_garbled_into_another_number_fails_the_checksum_and_locks(tmp_path: Path) -> None:
    """Valid JSON, plausible values: only the record's CRC tells that 120 s became 0 s."""
    clock = FakeClock(mono=START)
    LockoutStore(tmp_path, clock=clock, boot_id=BOOT).keep(0, 2, clock.mono() + 120, 120)
    record = json.loads((tmp_path / FILE).read_text())
    assert record["version"] == 2 and isinstance(record["crc"], int)
    unlocked = {**record, "locked_s": 0, "mono_until": None, "wall_until": None}
    (tmp_path / FILE).write_text(json.dumps(unlocked))
    store = LockoutStore(tmp_path, clock=clock, boot_id=BOOT)
    restored = store.restore(KeypadState())
    assert locked_for(restored, clock) == 60
    assert store.damage is not None and "checksum" in store.damage.reason


def test_a_linked_record_is_not_followed_and_locks_the_keypad(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_bytes(b'{"version": 1, "failures": 0, "lockouts": 0, "locked_s": 0, "boot_id": "boot-a", '
                       b'"mono_until": null, "wall_until": null, "synced": true}')
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE).symlink_to(target)
    clock = FakeClock(mono=START)
    restored = LockoutStore(state, clock=clock, boot_id=BOOT).restore(KeypadState())
    assert (restored.lockouts, locked_for(restored, clock)) == (1, 60)
    assert not (state / FILE).is_symlink() and target.read_bytes().startswith(b'{"version": 1, "failures": 0')
    [moved] = (state / "quarantine").iterdir()
    assert moved.is_symlink()  # the link itself, moved aside; its target untouched


def test_a_record_that_is_not_a_file_locks_the_keypad_too(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / FILE)  # a plain open() would wait for a writer for ever
    clock = FakeClock(mono=START)
    restored = LockoutStore(tmp_path, clock=clock, boot_id=BOOT).restore(KeypadState())
    assert locked_for(restored, clock) == 60


def test_a_level_beyond_the_sanity_bound_is_kept_at_the_bound_not_refused(tmp_path: Path) -> None:
    """65 lockouts is a long siege (at most an hour each), not damage: it used to unlock the keypad."""
    (tmp_path / FILE).write_bytes(LEVEL_65)
    clock = FakeClock(1_800_000_000.0, mono=START)
    store = LockoutStore(tmp_path, clock=clock, boot_id=BOOT)
    restored = store.restore(KeypadState())
    assert (restored.lockouts, restored.failures, locked_for(restored, clock)) == (64, 2, 3600)
    assert store.damage is None


def test_no_restored_lockout_outlasts_the_longest_one(tmp_path: Path) -> None:
    clock = FakeClock(mono=START)
    LockoutStore(tmp_path, clock=clock, boot_id=BOOT).keep(0, 9, clock.mono() + 10**9, 10**9)
    restored = LockoutStore(tmp_path, clock=clock, boot_id=BOOT, longest=3600).restore(KeypadState())
    assert locked_for(restored, clock) == 3600


def test_an_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OSError, match="cannot write the keypad lockout record"):
        LockoutStore(blocker / "state", clock=FakeClock(mono=START), boot_id=BOOT).keep(1, 0, None, 0)


# --- the real daemon, restarted, on the same injected clock -----------------------------------------

@contextmanager
def running(folder: Path, clock: FakeClock, factory: MockFactory) -> Iterator[Daemon]:
    """One run of the real daemon on ``clock``; leaving the block is a clean restart's stop."""
    config = folder / "config.toml"
    if not config.exists():
        write_config(folder, "[button]\ndebounce_ms = 0\n[keypad]\nlockout_seconds = 60\n"
                             "flood_entries = 100\nflood_keys = 10000\n")  # types faster than a person
        add(folder / "volunteers.toml", "v1", "V One", "4711")
    daemon = Daemon(configuration.load(config), clock=clock, pin_factory=factory)
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.close()


def _wrong(daemon: Daemon, times: int) -> None:
    for _ in range(times):
        done = daemon.runner.rejections["keypad"] + 1
        daemon.hardware.type_keys("0000#")
        assert daemon.loop.wait_until(lambda _s, _n, done=done: daemon.runner.rejections["keypad"] >= done, 3)


def test_a_restart_keeps_the_lockout_refuses_the_right_pin_and_ends_it_on_time(
        short_dir: Path, factory: MockFactory) -> None:
    clock = FakeClock(mono=START)
    with running(short_dir, clock, factory) as daemon:
        _wrong(daemon, 4)
    with running(short_dir, clock, factory) as daemon:  # restarted with 4 wrong PINs counted
        assert daemon.loop.state.keypad.failures == 4
        _wrong(daemon, 1)  # the fifth: locked for 60 s
        assert locked_for(daemon.loop.state.keypad, clock) == 60
    clock.advance(45)
    with running(short_dir, clock, factory) as daemon:
        assert locked_for(daemon.loop.state.keypad, clock) == 15
        refusals = daemon.runner.rejections["keypad"]
        daemon.hardware.type_keys("4711*1#")  # the right PIN, 15 s before the end
        assert daemon.loop.wait_until(lambda _s, _n: daemon.runner.rejections["keypad"] > refusals, 3)
        assert "locked" in daemon.runner.last_rejection["keypad"] and daemon.loop.state.on_duty == set()
        clock.advance(15)
        _wrong(daemon, 5)  # on time it takes PINs again; the level survived: this lockout doubles
        assert locked_for(daemon.loop.state.keypad, clock) == 120
    clock.advance(120)
    with running(short_dir, clock, factory) as daemon:
        daemon.hardware.type_keys("4711*1#")
        assert daemon.loop.wait_until(lambda s, _n: s.on_duty == {"v1"}, 3)
    lockouts = [e.data for e in read_events(short_dir / "state") if e.type == "keypad_lockout"]
    assert [(d["locked_s"], d["lockout"]) for d in lockouts] == [(60, 1), (120, 2)]
    record = json.loads((short_dir / "state" / FILE).read_text())
    assert (record["failures"], record["lockouts"], record["mono_until"]) == (0, 0, None)


def test_a_garbled_record_keeps_the_real_daemon_locked_across_two_restarts(
        short_dir: Path, factory: MockFactory) -> None:
    clock = FakeClock(mono=START)
    with running(short_dir, clock, factory):
        pass  # config, volunteer and state made
    (short_dir / "state" / FILE).write_bytes(LEVEL_65[:60])  # cut short
    for _restart in range(2):
        with running(short_dir, clock, factory) as daemon:
            assert locked_for(daemon.loop.state.keypad, clock) == 60
            refusals = daemon.runner.rejections["keypad"]
            daemon.hardware.type_keys("4711*1#")  # the right PIN: refused while locked
            assert daemon.loop.wait_until(
                lambda _s, _n, d=daemon, r=refusals: d.runner.rejections["keypad"] > r, 3)
            assert "locked" in daemon.runner.last_rejection["keypad"] and daemon.loop.state.on_duty == set()
    clock.advance(60)
    with running(short_dir, clock, factory) as daemon:
        daemon.hardware.type_keys("4711*1#")
        assert daemon.loop.wait_until(lambda s, _n: s.on_duty == {"v1"}, 3)
    damaged = [e.data for e in read_events(short_dir / "state") if e.type == "storage_damaged"]
    assert [(d["file"], str(d["reason"]).split(":")[0]) for d in damaged] == [(FILE, "not_json")]
