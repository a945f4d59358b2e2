"""An event read back from a file, checked field by field before the kiosk trusts any of it.

The runtime folder's unsent alarms (services/alarm_spool.py) are written by the daemon, but what
a restart finds there may be planted, left by an earlier provisioning (another device id or
precinct), cut short or garbled. ``Event.from_json`` takes any JSON object whose keys fit: a seq
of ``"x"`` broke ``safehouse status``, a seq already stored faulted the outbox, another kiosk's
event went out under this one's name. Here every field has its type, its bounds and, where the
kiosk knows the answer, its value: this device, this precinct, an alarm type, a seq the lease
has already issued, a real event id, and text that is valid Unicode (a lone surrogate cannot be
written to disk nor published). A refusal carries one reason word.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from safehouse.device.core.events import SCHEMA, Event

_TS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")
_FIELDS = frozenset(f.name for f in fields(Event))
MAX_TEXT = 64  # boot id and ts: far longer than ours
MAX_MONO = 1e12  # seconds since boot: 30,000 years


class EventRefused(ValueError):
    """The event is not one this kiosk wrote; ``reason`` is one word, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Expected:
    """What the kiosk knows an event of its own must be: ``max_seq`` is the highest seq issued."""

    device_id: str
    precinct: str
    types: frozenset[str]
    max_seq: int


def checked_event(body: object, expected: Expected) -> Event:
    """``body`` (parsed JSON) as an ``Event`` of this kiosk, or ``EventRefused``."""
    if not isinstance(body, dict):
        raise EventRefused("bad_field", "an event must be a JSON object")
    if set(body) != _FIELDS:
        odd = sorted(set(body) ^ _FIELDS)[:5]
        raise EventRefused("bad_field", f"fields missing or unknown: {', '.join(map(repr, odd))}")
    if body["schema"] != SCHEMA:
        raise EventRefused("bad_field", f"schema must be {SCHEMA!r}")
    event_id = _text(body, "event_id", 36)
    if not _is_uuid(event_id):
        raise EventRefused("bad_event_id", f"event_id {event_id[:40]!r} is not an event id (a UUID)")
    seq = body["seq"]
    if not _integer(seq) or not 1 <= seq <= expected.max_seq:
        raise EventRefused("bad_seq", f"seq {str(seq)[:20]!r} is not one this kiosk has issued "
                                      f"(1..{expected.max_seq})")
    if body["device_id"] != expected.device_id or body["precinct"] != expected.precinct:
        raise EventRefused("other_kiosk", f"the event is {str(body['device_id'])[:64]!r} of precinct "
                                          f"{str(body['precinct'])[:64]!r}, not this kiosk's")
    if body["type"] not in expected.types:
        raise EventRefused("bad_type", f"type {str(body['type'])[:40]!r} is not one kept here "
                                       f"({', '.join(sorted(expected.types))})")
    code = body["code"]
    if code is not None and not (_integer(code) and 100 <= code <= 999):
        raise EventRefused("bad_field", "code must be a Contact ID code (100..999) or null")
    ts = _text(body, "ts", MAX_TEXT)
    if not _TS.fullmatch(ts):
        raise EventRefused("bad_field", "ts must be RFC 3339 UTC")
    mono = body["mono"]
    if not isinstance(mono, int | float) or isinstance(mono, bool) or not math.isfinite(mono) \
            or not 0 <= mono <= MAX_MONO:
        raise EventRefused("bad_field", "mono must be a number of seconds")
    for flag in ("clock_synced", "test"):
        if not isinstance(body[flag], bool):
            raise EventRefused("bad_field", f"{flag} must be true or false")
    if not isinstance(body["data"], Mapping):
        raise EventRefused("bad_field", "data must be an object")
    event = Event(event_id=event_id, seq=seq, device_id=expected.device_id, precinct=expected.precinct,
                  type=str(body["type"]), code=code, ts=ts, clock_synced=body["clock_synced"],
                  mono=float(mono), boot_id=_text(body, "boot_id", MAX_TEXT), test=body["test"],
                  data=dict(body["data"]))
    try:
        event.to_json().encode("utf-8")
    except UnicodeEncodeError:
        raise EventRefused("not_unicode", "the event holds text that is not valid Unicode "
                                          "(a lone surrogate)") from None
    return event


def _text(body: Mapping[str, Any], name: str, limit: int) -> str:
    value = body[name]
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise EventRefused("bad_field", f"{name} must be a text of 1..{limit} characters")
    return value


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
