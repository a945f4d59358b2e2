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
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from safehouse.device.core.clock import Clock
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.files import make_folders
from safehouse.device.core.state import KeypadState
from safehouse.services.fsync import fsync_dir

_LOG = logging.getLogger(__name__)
FILE = "keypad-lockout.json"
VERSION = 1
MAX_LEVEL = 64  # sanity bounds for a record read back from the disk
MAX_COUNT = 10_000


class LockoutStoreError(EventLogError):
    """The lockout record could not be written; the message names the file."""


class LockoutStore:
    """``keep()`` on every change (from the shell); ``restore()`` once, at start."""

    def __init__(self, state_dir: Path, *, clock: Clock, boot_id: str) -> None:
        self.path = state_dir / FILE
        self._clock, self._boot_id = clock, boot_id

    def keep(self, failures: int, lockouts: int, locked_until: float | None, locked_s: float) -> None:
        """Write the record durably; raises ``LockoutStoreError`` if it cannot."""
        mono, wall = self._clock.mono(), self._clock.wall()
        left = max(0.0, min(locked_s, locked_until - mono)) if locked_until is not None else 0.0
        record = {"version": VERSION, "failures": failures, "lockouts": lockouts,
                  "locked_s": round(left, 3), "boot_id": self._boot_id,
                  "mono_until": round(mono + left, 3) if left else None,
                  "wall_until": round(wall + left, 3) if left else None,
                  "synced": self._clock.synced()}
        tmp = self.path.with_name(FILE + ".tmp")
        try:
            make_folders(self.path.parent)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)  # a temp file left by a crash keeps its mode otherwise
                os.write(fd, json.dumps(record).encode("ascii"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise LockoutStoreError(f"cannot write the keypad lockout record {self.path}: {exc} "
                                    "(check that device.state_dir is writable)") from exc

    def restore(self, keypad: KeypadState) -> KeypadState:
        """``keypad`` with the stored count, level and end (in this run's monotonic time)."""
        record = self._read()
        if record is None:
            return keypad
        mono, left = self._clock.mono(), record["locked_s"]
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

    def _read(self) -> dict[str, Any] | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            _LOG.error("cannot read the keypad lockout record %s: %s; starting unlocked", self.path, exc)
            return None
        try:
            record = json.loads(raw[:4096])
            return _checked(record)
        except (ValueError, TypeError, KeyError) as exc:
            _LOG.error("keypad lockout record %s is not valid (%s); starting unlocked", self.path, exc)
            return None


def _checked(record: Any) -> dict[str, Any]:
    """The record's fields with their types and bounds checked; ValueError if any is wrong."""
    if not isinstance(record, dict) or record.get("version") != VERSION:
        raise ValueError("unknown version")
    out: dict[str, Any] = {"boot_id": str(record["boot_id"]), "synced": record["synced"] is True}
    for name, top in (("failures", MAX_COUNT), ("lockouts", MAX_LEVEL)):
        value = record[name]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise ValueError(f"{name} must be an integer 0..{top}")
        out[name] = value
    for name in ("locked_s", "mono_until", "wall_until"):
        value = record[name]
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)
                                  or value != value or abs(value) > 1e12):
            raise ValueError(f"{name} must be a number")
        out[name] = float(value) if value is not None else None
    out["locked_s"] = max(0.0, out["locked_s"] or 0.0)
    if out["mono_until"] is not None and out["wall_until"] is None:
        raise ValueError("wall_until missing")
    return out
