"""The unsent alarms kept in the runtime folder, and what a restart reads back from there.

The memory queue (services/memory_alarms.py) keeps every alarm it holds in the runtime folder
(``unsent-alarm-{event_id}.json``, 0600), which outlives a crash, ``kill -9`` and a restart
(the unit keeps ``/run/safehouse``), so the next start can still send it. The file holds the
event and nothing else: no topic (the caller builds it from the config, services/topics.py).

What a start finds there is input, not the kiosk's memory: a file may be planted, left by an
earlier provisioning, cut short or garbled. Each is opened without following a link, bounded,
decoded as strict UTF-8 and checked field by field (services/event_check.py); one that fails
is moved aside into ``quarantine/`` beside it (never deleted, never trusted, never in the way
of the others) with its reason word, and reported as a ``storage_damaged`` ``Damage``.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from safehouse.device.core import boundedjson
from safehouse.device.core.events import Event
from safehouse.device.core.files import FileRefused, printable, read_back, set_aside, write_atomic
from safehouse.services.event_check import EventRefused, Expected, checked_event
from safehouse.services.outbox_salvage import Damage

_LOG = logging.getLogger(__name__)
PREFIX = "unsent-alarm-"
MAX_BYTES = 64 * 1024  # an alarm's file is under 2 KB
MAX_DEPTH = 16
KEEP = 50  # set-aside files kept in quarantine/ (the oldest go beyond it: /run is RAM)


class AlarmSpool:
    """One folder of unsent alarms; ``damage`` lists the files set aside since it was made."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.damage: list[Damage] = []

    def path_of(self, event_id: str) -> Path:
        return self.folder / f"{PREFIX}{event_id}.json"

    def keep(self, event_id: str, payload: bytes) -> None:
        """Write the alarm durably; an alarm that cannot be kept is logged (memory still has it)."""
        record = json.dumps({"event_id": event_id, "payload": payload.decode("utf-8")}, ensure_ascii=False)
        try:
            write_atomic(self.path_of(event_id), record.encode("utf-8"), 0o600)
        except (OSError, UnicodeError) as exc:
            _LOG.error("alarm %s not kept in %s (a crash now would lose it): %s", event_id, self.folder, exc)

    def drop(self, event_id: str) -> None:
        try:
            self.path_of(event_id).unlink(missing_ok=True)
        except OSError as exc:
            _LOG.warning("could not remove the kept copy of alarm %s: %s", event_id, exc)

    def read_back(self, expected: Expected) -> list[Event]:
        """The alarms a killed run left, checked, in seq order; every other file set aside."""
        try:
            names = sorted(n for n in os.listdir(self.folder) if _ours(n))
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                _LOG.error("cannot list the unsent alarms in %s: %s", self.folder, exc)
            return []
        found: dict[str, Event] = {}
        for name in names:
            try:
                event = self._read(name, expected)
            except (FileRefused, EventRefused, boundedjson.JsonRefused) as exc:
                reason = str(exc.reason)
                self.set_aside(name, reason, str(exc).removeprefix(f"{reason}: "))
                continue
            except OSError as exc:  # unreadable for now (I/O): left in place, tried at the next start
                _LOG.error("unsent alarm %s unreadable: %s", self.folder / name, exc)
                continue
            if event.event_id in found and name != self.path_of(event.event_id).name:
                self._remove_temp(name)  # a temp copy of a kept file: the kept one is enough
                continue
            found[event.event_id] = event
            if name != self.path_of(event.event_id).name:
                self.keep(event.event_id, event.to_json().encode("utf-8"))  # a complete temp file
                self._remove_temp(name)
        return sorted(found.values(), key=lambda e: e.seq)

    def _read(self, name: str, expected: Expected) -> Event:
        raw = read_back(self.folder / name, MAX_BYTES)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise EventRefused("not_utf8", "the file is not valid UTF-8") from None
        outer = boundedjson.loads(text, max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, what="the file")
        if not isinstance(outer, dict) or not isinstance(outer.get("payload"), str):
            raise EventRefused("bad_field", "the file must hold {'event_id': ..., 'payload': '<event>'}")
        body = boundedjson.loads(outer["payload"], max_bytes=MAX_BYTES, max_depth=MAX_DEPTH, what="the event")
        event = checked_event(body, expected)  # a "topic" kept by an older firmware is never read
        if outer.get("event_id") != event.event_id or not name.lstrip(".").startswith(
                self.path_of(event.event_id).name):
            raise EventRefused("bad_event_id", f"its name and event_id do not both name {event.event_id}")
        return event

    def set_aside(self, name: str, reason: str, why: str, *, report: bool = True) -> Path | None:
        """Move ``name`` (a link is moved, not followed) into ``quarantine/``; ``report`` it as
        damage (a ``storage_damaged`` event) unless the caller reports it another way."""
        moved = set_aside(self.folder, name, reason, keep=KEEP, family=PREFIX)
        why = printable(why)
        _LOG.critical("unsent alarm file %s refused (%s): %s; %s", printable(str(self.folder / name)), reason,
                      why, f"moved aside as {moved}" if moved else "left in place (it cannot be moved)")
        if report:
            self.damage.append(Damage(file=printable(name)[:120], reason=f"{reason}: {why}"[:300],
                                      quarantined=moved, high=0, salvaged_done=True))
        return moved

    def _remove_temp(self, name: str) -> None:
        try:
            (self.folder / name).unlink()
        except OSError as exc:
            _LOG.warning("could not remove the temp copy %s: %s", self.folder / name, exc)


def _ours(name: str) -> bool:
    """A kept alarm, or the temp file of one a crash cut off before its rename."""
    return (name.startswith(PREFIX) and name.endswith(".json")) or (
        name.startswith("." + PREFIX) and name.endswith(".tmp"))
