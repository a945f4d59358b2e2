"""The keypad lockout, kept across restarts and power cuts: wrong-PIN count, level and end.

Kept in memory only, a restart cleared a lockout and reset its doubling, so guessing PINs
cost one ``systemctl restart`` (or one pulled plug) per five guesses. Here every change the
core decides (a ``KeepLockout`` effect) is written before the next input is handled: a small
JSON file in ``state_dir``, mode 0600, written to a temp file, fsynced and renamed over the
old one (then the folder fsynced), so a power cut leaves the old record or the new, never half.

Time across a restart. The end is stored three ways, because a Pi has no RTC:

- the monotonic end and the boot id: after a daemon restart within the same boot (the
  common case: a crash, an update, systemd's restart) the monotonic clock runs on, so the
  lockout ends exactly on time;
- the wall-clock end, with whether the wall clock was NTP-synced when it was written: after
  a reboot, monotonic time starts again from zero, so a synced record is compared with the
  wall clock. Before NTP syncs, a Pi's wall clock is the last time fake-hwclock saved, which is
  behind the real time, never ahead: the lockout can only come out longer, never shorter;
- the seconds still to run when it was written: the cap on all of the above (a clock stepped
  backwards cannot lengthen a lockout past what was left), and what is used when the record's
  wall time means nothing (written before NTP synced): after such a reboot the lockout runs
  its remaining length again from the start — pulling the plug never shortens it.

The count and the level need no clock: they are kept until a right PIN resets them.

A record that cannot be trusted never means unlimited guesses. It carries a CRC-32 of its
fields, so a garbled byte is seen even where it leaves valid JSON. One that is unreadable,
truncated, garbled, of an unknown version, or not a plain file (a link is never followed) is
damage: the keypad starts locked at the first level for the full first-level time, the record
is moved aside into ``quarantine/`` (reported as ``storage_damaged``) and a fresh one written at
once, so a second restart does not unlock it either. A level or count beyond the sanity bounds
(a long siege can reach them) is kept at the bound, not refused; no restored lockout outlasts
``keypad.lockout_max_seconds``.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from safehouse.device.core import boundedjson
from safehouse.device.core.clock import Clock
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.files import make_folders, read_back, set_aside, write_atomic
from safehouse.device.core.state import KeypadState
from safehouse.services.outbox_salvage import Damage

_LOG = logging.getLogger(__name__)
FILE = "keypad-lockout.json"
VERSION = 2  # 2 adds the CRC
MAX_LEVEL = 64  # sanity bounds for a record read back from the disk (beyond: kept at the bound)
MAX_COUNT = 10_000
MAX_BYTES = 4096
KEEP = 3  # damaged records kept in quarantine/


class LockoutStoreError(EventLogError):
    """The lockout record could not be written; the message names the file."""


class LockoutStore:
    """``keep()`` on every change (from the shell); ``restore()`` once, at start.

    ``first_lockout`` and ``longest`` are the keypad policy's first lockout and its cap
    (``keypad.lockout_seconds``, ``keypad.lockout_max_seconds``); ``damage`` holds a damaged
    record found by ``restore()``, for the ``storage_damaged`` report.
    """

    def __init__(self, state_dir: Path, *, clock: Clock, boot_id: str, first_lockout: float = 60.0,
                 longest: float = 3600.0) -> None:
        self.path = state_dir / FILE
        self._clock, self._boot_id = clock, boot_id
        self._first, self._longest = first_lockout, max(first_lockout, longest)
        self.damage: Damage | None = None

    def keep(self, failures: int, lockouts: int, locked_until: float | None, locked_s: float) -> None:
        """Write the record durably; raises ``LockoutStoreError`` if it cannot."""
        mono, wall = self._clock.mono(), self._clock.wall()
        left = max(0.0, min(locked_s, locked_until - mono)) if locked_until is not None else 0.0
        record = {"version": VERSION, "failures": failures, "lockouts": lockouts,
                  "locked_s": round(left, 3), "boot_id": self._boot_id,
                  "mono_until": round(mono + left, 3) if left else None,
                  "wall_until": round(wall + left, 3) if left else None,
                  "synced": self._clock.synced()}
        try:
            make_folders(self.path.parent)
            write_atomic(self.path, sealed(record), 0o600)
        except OSError as exc:
            raise LockoutStoreError(f"cannot write the keypad lockout record {self.path}: {exc} "
                                    "(check that device.state_dir is writable)") from exc

    def restore(self, keypad: KeypadState) -> KeypadState:
        """``keypad`` with the stored count, level and end (in this run's monotonic time)."""
        try:
            record = self._read()
        except FileNotFoundError:
            return keypad
        except (OSError, ValueError, TypeError, KeyError) as exc:
            return self._damaged(keypad, exc)
        mono, left = self._clock.mono(), min(record["locked_s"], self._longest)
        if record["mono_until"] is None or left <= 0:
            remaining = 0.0
        elif record["boot_id"] == self._boot_id:
            remaining = record["mono_until"] - mono
        elif record["synced"]:
            remaining = record["wall_until"] - self._clock.wall()
        else:
            remaining = left
        remaining = min(remaining, left)
        restored = replace(keypad, failures=record["failures"], lockouts=record["lockouts"],
                           locked_until=mono + remaining if remaining > 0 else None)
        if remaining > 0:
            _LOG.warning("keypad locked for another %.0f s (lockout %d), kept across the restart",
                         remaining, record["lockouts"])
        return restored

    def _read(self) -> dict[str, Any]:
        """The record, checked; FileNotFoundError when there is none, else why it is unusable."""
        raw = read_back(self.path, MAX_BYTES)  # a link, a FIFO, a huge file: refused, not followed
        return _checked(boundedjson.loads(raw, max_bytes=MAX_BYTES, max_depth=2, what="the record"))

    def _damaged(self, keypad: KeypadState, exc: BaseException) -> KeypadState:
        """An unusable record: locked at the first level for its full time, reported, rewritten."""
        reason = getattr(exc, "reason", "") or ("unreadable" if isinstance(exc, OSError) else "bad_record")
        why = f"{reason}: {str(exc).removeprefix(f'{reason}: ')}"[:300]
        moved = set_aside(self.path.parent, FILE, "damaged", keep=KEEP) if self._present() else None
        self.damage = Damage(file=FILE, reason=why, quarantined=moved, high=0, salvaged_done=True)
        locked = replace(keypad, failures=0, lockouts=max(1, keypad.lockouts),
                         locked_until=self._clock.mono() + self._first)
        _LOG.critical("keypad lockout record %s cannot be trusted (%s): the keypad stays locked for %.0f s "
                      "(lockout 1), as if a lockout had just begun; %s", self.path, why, self._first,
                      f"the record was moved to {moved}" if moved else "the record could not be moved")
        try:
            self.keep(locked.failures, locked.lockouts, locked.locked_until, self._first)
        except LockoutStoreError as error:  # still locked now; a restart before a write works would not be
            _LOG.critical("%s: a restart could end this lockout early", error)
        return locked

    def _present(self) -> bool:
        try:
            self.path.lstat()
        except OSError:
            return False
        return True


def sealed(record: dict[str, Any]) -> bytes:
    """The record as written: its fields and a CRC-32 over them, so a garbled byte is seen."""
    return json.dumps({**record, "crc": _crc(record)}).encode("ascii")


def _crc(record: dict[str, Any]) -> int:
    body = {k: v for k, v in record.items() if k != "crc"}
    return zlib.crc32(json.dumps(body, sort_keys=True).encode("utf-8", "backslashreplace"))


def _checked(record: Any) -> dict[str, Any]:
    """The record's fields with their types and bounds checked; ValueError if any is wrong.

    Version 2 carries a CRC (any garbled byte fails it); version 1, written before it, is read
    with the same field checks so an upgrade keeps a lockout in force."""
    version = record.get("version") if isinstance(record, dict) else None
    if type(version) is not int or version not in (1, VERSION):
        raise ValueError("unknown version")
    if version == VERSION and record.get("crc") != _crc(record):
        raise ValueError("the record fails its checksum (garbled)")
    if not isinstance(record["boot_id"], str) or not isinstance(record["synced"], bool):
        raise ValueError("boot_id must be a text and synced true or false")
    out: dict[str, Any] = {"boot_id": record["boot_id"], "synced": record["synced"]}
    for name, top in (("failures", MAX_COUNT), ("lockouts", MAX_LEVEL)):
        value = record[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0")
        if value > top:
            _LOG.warning("keypad lockout record: %s %s kept at %d", name, str(value)[:20], top)
        out[name] = min(value, top)
    for name in ("locked_s", "mono_until", "wall_until"):
        value = record[name]
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)
                                  or value != value or abs(value) > 1e12):
            raise ValueError(f"{name} must be a number")
        out[name] = float(value) if value is not None else None
    if out["locked_s"] is None or out["locked_s"] < 0:
        raise ValueError("locked_s must be a number >= 0")
    running = out["locked_s"] > 0
    if (out["mono_until"] is not None) != running or (out["wall_until"] is not None) != running:
        raise ValueError("mono_until and wall_until must be given exactly when locked_s > 0")
    return out
