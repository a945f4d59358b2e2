"""Precinct commands (``cmd/{name}``): parsed and checked without I/O, for ``decide()``.

Everything a broker can deliver is hostile until proven otherwise: oversized, not JSON,
retained (a stale order replayed on every reconnect), too old, repeated, unknown. Each
failure becomes an error result naming the problem; none becomes a crash or a second effect.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_PAYLOAD = 64 * 1024
COMMANDS = ("ack", "resolve", "test", "light", "ping", "rollcall", "selftest")
LIGHT_PATTERNS = ("beacon", "off", "test", "neighbor", "acknowledged", "help_coming", "alarm")
MAX_LIGHT_MINUTES = 24 * 60


class CommandInvalid(ValueError):
    """The command cannot be executed; the message goes back in the error result."""


@dataclass(frozen=True)
class Command:
    name: str
    id: str
    args: dict[str, Any] = field(default_factory=dict)


def _timestamp(value: Any) -> float:
    if not isinstance(value, str):
        raise CommandInvalid("ts must be an RFC 3339 time string, e.g. 2026-11-28T12:00:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise CommandInvalid(f"ts is not an RFC 3339 time: {value!r}") from exc
    if parsed.tzinfo is None:
        raise CommandInvalid("ts must carry a time zone (use Z for UTC)")
    return parsed.timestamp()


def parse(name: str, payload: bytes, *, retain: bool, wall: float, clock_synced: bool,
          freshness: float) -> Command:
    """Check one command's envelope and arguments; raise CommandInvalid with the reason."""
    if len(payload) > MAX_PAYLOAD:
        raise CommandInvalid(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} byte limit")
    if retain:
        raise CommandInvalid("retained commands are refused: publish commands with retain=false")
    if name not in COMMANDS:
        raise CommandInvalid(f"unknown command {name!r} (known: {', '.join(COMMANDS)})")
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandInvalid("payload is not valid UTF-8 JSON") from exc
    if not isinstance(body, dict):
        raise CommandInvalid("payload must be a JSON object")
    cid = body.get("id")
    if not isinstance(cid, str) or not 1 <= len(cid) <= 64:
        raise CommandInvalid("id must be a string of 1-64 characters, unique per command")
    issued = _timestamp(body.get("ts"))
    if clock_synced and abs(wall - issued) > freshness:
        raise CommandInvalid(f"command is {wall - issued:.0f} s old; the freshness window is "
                             f"{freshness:g} s")
    args = {k: v for k, v in body.items() if k not in ("id", "ts")}
    _check_args(name, args)
    return Command(name, cid, args)


def _check_args(name: str, args: dict[str, Any]) -> None:
    allowed = {"ack": {"event_id"}, "resolve": {"event_id", "outcome"}, "test": set(),
               "light": {"pattern", "minutes"}, "ping": set(), "rollcall": set(),
               "selftest": set()}[name]
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise CommandInvalid(f"unknown field(s) for {name}: {', '.join(unknown)}")
    if name == "ack" and not _short_text(args.get("event_id")):
        raise CommandInvalid("ack needs event_id: the alarm's event_id")
    if name == "resolve":
        if args.get("outcome") not in ("assistance", "false_alarm", "police", "cancelled"):
            raise CommandInvalid("outcome must be one of assistance, false_alarm, police, cancelled")
        if "event_id" in args and not _short_text(args["event_id"]):
            raise CommandInvalid("event_id must be a string")
    if name == "light":
        if args.get("pattern") not in LIGHT_PATTERNS:
            raise CommandInvalid(f"pattern must be one of {', '.join(LIGHT_PATTERNS)}")
        minutes = args.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int | float) \
                or not 0 <= minutes <= MAX_LIGHT_MINUTES:
            raise CommandInvalid(f"minutes must be a number from 0 (cancel) to {MAX_LIGHT_MINUTES}")


def _short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128


def parse_alliance(payload: bytes) -> tuple[str, str]:
    """An alliance alert → (device_id, event_id); raise ValueError when malformed."""
    if len(payload) > 4096:
        raise ValueError("alliance alert too large")
    body = json.loads(payload)
    if not isinstance(body, dict) or not _short_text(body.get("device_id")) \
            or not _short_text(body.get("event_id")):
        raise ValueError("alliance alert needs device_id and event_id strings")
    return body["device_id"], body["event_id"]
