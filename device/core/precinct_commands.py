"""Precinct commands (``cmd/{name}``): parsed and checked without I/O, for ``decide()``.

Everything a broker can deliver is hostile until proven otherwise: oversized, too deeply
nested, not JSON, a key given twice, text that is not valid printable Unicode (a lone
surrogate: ``"\\ud800"`` is valid JSON), retained (a stale order replayed on every
reconnect), too old, repeated, unknown. Each failure becomes an error result
``"<reason>: <explanation>"`` that echoes the command's id whenever it could be read and is
itself valid text; none becomes a crash or a second effect. ``ts`` is an RFC 3339 date-time
and nothing else (``datetime.fromisoformat`` also takes ISO week dates, ordinal dates and the
basic format).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from safehouse.device.core import boundedjson, text
from safehouse.device.core.lifecycle import OUTCOMES
from safehouse.device.core.ratelimit import clip
from safehouse.device.core.signals import LightPattern

MAX_PAYLOAD = 64 * 1024
MAX_DEPTH = 4  # commands are flat objects: anything deeper is refused before json.loads
MAX_ALLIANCE = 4096
COMMANDS = ("ack", "resolve", "test", "light", "ping", "rollcall", "selftest")
MAX_LIGHT_MINUTES = 24 * 60
# RFC 3339 section 5.6 date-time; T and Z may be lower case (its note). ASCII digits only.
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                      r"(?:[Zz]|([+-])(\d{2}):(\d{2}))", re.ASCII)


class CommandInvalid(ValueError):
    """The command cannot be executed; the message goes back in the error result.

    ``reason`` is a stable token (``retained``, ``replayed``, ``too_deep``...) and the error
    text starts with it; ``id`` is the command's id when it could be read.
    """

    def __init__(self, reason: str, message: str, id_: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.id = reason, id_


@dataclass(frozen=True)
class Command:
    name: str
    id: str
    args: dict[str, Any] = field(default_factory=dict)
    ts: float = 0.0  # when the sender issued it (POSIX seconds, by the sender's clock)


def _timestamp(value: Any, cid: str) -> float:
    if not isinstance(value, str) or len(value) > 64:
        raise CommandInvalid("bad_ts", "ts must be an RFC 3339 time string, e.g. 2026-11-28T12:00:00Z",
                             cid)
    m = _RFC3339.fullmatch(value)
    try:
        if m is None:
            raise ValueError(value)
        year, month, day, hour, minute, second, fraction, sign, off_h, off_m = m.groups()
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0)) * (-1 if sign == "-" else 1)
        if int(off_m or 0) > 59:
            raise ValueError(value)
        parsed = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                          int((fraction or "").ljust(6, "0")[:6]), timezone(offset))
    except ValueError as exc:  # no match, or a field out of range (Feb 30, 24:00, a leap second)
        raise CommandInvalid("bad_ts", f"ts is not an RFC 3339 date-time (e.g. 2026-11-28T12:00:00Z): "
                             f"{clip(value, 64)}", cid) from exc
    return parsed.timestamp()


def parse(name: str, payload: bytes, *, retain: bool, wall: float, clock_synced: bool,
          freshness: float) -> Command:
    """Check one command's envelope and arguments; raise CommandInvalid with the reason."""
    try:
        body = boundedjson.loads(payload, max_bytes=MAX_PAYLOAD, max_depth=MAX_DEPTH)
    except boundedjson.JsonRefused as exc:
        raise CommandInvalid(exc.reason, str(exc).split(": ", 1)[1], exc.id) from None
    raw_id = body.get("id") if isinstance(body, dict) else None
    cid = raw_id if isinstance(raw_id, str) and 0 < len(raw_id) <= boundedjson.MAX_ID \
        and text.problem(raw_id) is None else None
    try:
        text.check_json(body, "command")  # any string, any key: one that cannot be encoded is refused
    except text.TextRefused as exc:
        raise CommandInvalid(exc.reason, str(exc).split(": ", 1)[1], cid) from None
    if retain:
        raise CommandInvalid("retained", "retained commands are refused: publish commands with "
                             "retain=false (and clear the retained one)", cid)
    if name not in COMMANDS:
        raise CommandInvalid("unknown_command", f"unknown command {clip(name, 64)} "
                             f"(known: {', '.join(COMMANDS)})", cid)
    if not isinstance(body, dict):
        raise CommandInvalid("not_object", "payload must be a JSON object")
    if cid is None:
        raise CommandInvalid("bad_id", "id must be a string of 1-64 characters, unique per command")
    issued = _timestamp(body.get("ts"), cid)
    if clock_synced and abs(wall - issued) > freshness:
        raise CommandInvalid("stale", f"command is {wall - issued:.0f} s old; the freshness window is "
                             f"{freshness:g} s", cid)
    args = {k: v for k, v in body.items() if k not in ("id", "ts")}
    try:
        _check_args(name, args)
    except ValueError as exc:
        raise CommandInvalid("bad_args", str(exc), cid) from None
    return Command(name, cid, args, ts=issued)


def _check_args(name: str, args: dict[str, Any]) -> None:
    allowed = {"ack": {"event_id"}, "resolve": {"event_id", "outcome"}, "test": set(),
               "light": {"pattern", "minutes"}, "ping": set(), "rollcall": set(),
               "selftest": set()}[name]
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s) for {name}: {clip(', '.join(unknown), 120)}")
    if name == "ack" and not _short_text(args.get("event_id")):
        raise ValueError("ack needs event_id: the alarm's event_id")
    if name == "resolve":
        if args.get("outcome") not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        if "event_id" in args and not _short_text(args["event_id"]):
            raise ValueError("event_id must be a string")
    if name == "light":
        if args.get("pattern") not in tuple(LightPattern):
            raise ValueError(f"pattern must be one of {', '.join(LightPattern)}")
        minutes = args.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) \
                or not 0 <= minutes <= MAX_LIGHT_MINUTES:
            raise ValueError(f"minutes must be a number from 0 (cancel) to {MAX_LIGHT_MINUTES}")


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def parse_alliance(payload: bytes) -> tuple[str, str]:
    """An alliance alert → (device_id, event_id); raise ValueError (reason first) when malformed."""
    body = boundedjson.loads(payload, max_bytes=MAX_ALLIANCE, max_depth=MAX_DEPTH, what="alliance alert")
    text.check_json(body, "alliance alert")
    if not isinstance(body, dict) or not _short_text(body.get("device_id")) \
            or not _short_text(body.get("event_id")):
        raise ValueError("bad_alert: an alliance alert needs device_id and event_id strings")
    return body["device_id"], body["event_id"]
