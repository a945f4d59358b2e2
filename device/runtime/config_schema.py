"""The configuration schema as data, and the checker that walks a parsed TOML tree against it.

The schema is one table of sections and keys so that the README's config reference, the
checker and the defaults cannot drift apart. The checker never stops at the first fault: a
technician on SSH fixes a file in one pass only if every problem is listed with its key path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
BROKER_URL = re.compile(r"^(mqtts?)://([^:/\s]+)(?::(\d{1,5}))?$")

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Key:
    """One config key: its TOML type, default (None = required), check and reference text."""

    kind: type
    default: Any
    doc: str
    check: Check | None = None
    optional: bool = False  # may be absent with no default (e.g. an unwired GPIO input)


def in_range(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        return None if lo <= v <= hi else f"must be between {lo} and {hi}, got {v!r}"

    return check


def one_of(*choices: object) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(map(repr, choices))}, got {v!r}"

    return check


def matches(pattern: re.Pattern[str], what: str, allow_empty: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if allow_empty and v == "":
            return None
        return None if pattern.match(v) else f"must be {what}, got {v!r}"

    return check


def _broker_url(v: Any) -> str | None:
    if v == "":
        return None
    m = BROKER_URL.match(v)
    if not m:
        return f"must be '' (offline only) or mqtt://host[:port] or mqtts://host[:port], got {v!r}"
    if m.group(3) and not 1 <= int(m.group(3)) <= 65535:
        return f"port must be 1-65535, got {m.group(3)}"
    return None


BCM = in_range(0, 27)
ID_TEXT = "1-64 characters of A-Z a-z 0-9 _ -"

SCHEMA: Mapping[str, Mapping[str, Key]] = {
    "device": {
        "id": Key(str, None, "kiosk identity, also the MQTT client id", matches(IDENT, ID_TEXT)),
        "precinct": Key(str, None, "precinct the kiosk reports to", matches(IDENT, ID_TEXT)),
        "alliance": Key(str, "", "neighbourhood alliance id ('' = none)",
                        matches(IDENT, ID_TEXT, allow_empty=True)),
        "hardware": Key(str, "pi", "'pi' (real GPIO) or 'sim' (gpiozero MockFactory)",
                        one_of("pi", "sim")),
        "state_dir": Key(str, "/var/lib/safehouse", "durable state: outbox, evidence, daily counts"),
    },
    "broker": {
        "url": Key(str, "", "'' = offline only; mqtt://host:port or mqtts://host:port", _broker_url),
        "ca": Key(str, "", "CA certificate (PEM) for mqtts"),
        "cert": Key(str, "", "client certificate (PEM) for mqtts"),
        "key": Key(str, "", "client private key (PEM) for mqtts"),
        "keepalive": Key(int, 10, "MQTT keepalive in seconds; the broker publishes the last will "
                         "after 1.5 x keepalive", in_range(5, 600)),
        "protocol": Key(str, "5", "MQTT protocol version: '5' or '3.1.1'", one_of("5", "3.1.1")),
        "username": Key(str, "", "optional MQTT username (with mutual TLS the cert identifies the kiosk)"),
        "password": Key(str, "", "optional MQTT password"),
        "window": Key(int, 100, "QoS 1 messages in flight at once", in_range(1, 1000)),
    },
    "outbox": {
        "events_cap": Key(int, 100_000, "pending events before non-alarm events are refused (a fault "
                          "is raised at 90 %); alarms are always kept", in_range(100, 10_000_000)),
        "telemetry_keep": Key(int, 1000, "newest pending telemetry messages kept while offline",
                              in_range(1, 1_000_000)),
        "delivered_retention": Key(float, 72.0, "hours delivered rows are kept for audit",
                                   in_range(0.0, 24 * 365)),
        "alarm_reserve_mb": Key(float, 4.0, "space set aside in state_dir, given back to alarm "
                                "events the moment the disk is full (0 = none)", in_range(0.0, 1024.0)),
    },
    "telemetry": {
        "interval": Key(float, 60.0, "seconds between telemetry messages", in_range(1.0, 86_400.0)),
    },
    "alliance": {
        "show_seconds": Key(float, 120.0, "how long a neighbour's alarm shows as the 'neighbor' light",
                            in_range(1.0, 3600.0)),
    },
    "camera": {
        "enabled": Key(bool, True, "take snapshots when an alarm starts"),
        "offsets": Key(tuple, (0.0, 1.0, 2.0), "seconds after the press of each snapshot",
                       lambda v: None if 1 <= len(v) <= 10 and all(0 <= x <= 60 for x in v)
                       and list(v) == sorted(v) else "must be 1-10 ascending numbers from 0 to 60"),
        "width": Key(int, 1280, "snapshot width in pixels", in_range(160, 4056)),
        "height": Key(int, 720, "snapshot height in pixels", in_range(120, 3040)),
        "quality": Key(int, 85, "JPEG quality 1-95", in_range(1, 95)),
        "timeout": Key(float, 5.0, "a snapshot not taken within this (s) counts as a camera failure",
                       in_range(0.5, 60.0)),
    },
    "microphone": {
        "enabled": Key(bool, True, "record an audio clip when an alarm starts"),
        "pre_roll": Key(float, 10.0, "seconds kept from before the press (0 = microphone closed "
                        "until an alarm)", in_range(0.0, 60.0)),
        "post_roll": Key(float, 20.0, "seconds recorded after the press", in_range(1.0, 300.0)),
        "device": Key(str, "", "sounddevice input device name, or its number ('' = the default input)"),
    },
    "evidence": {
        "quota_mb": Key(float, 512.0, "evidence kept on disk; past it the oldest delivered goes first",
                        in_range(1.0, 1_000_000.0)),
        "hard_limit_mb": Key(float, 1024.0, "only past this is undelivered evidence evicted (a fault)",
                             in_range(1.0, 1_000_000.0)),
        "retention_days": Key(float, 30.0, "delivered evidence is deleted after this many days",
                              in_range(0.0, 3650.0)),
    },
    "commands": {
        "freshness": Key(float, 300.0, "precinct commands older than this (s) are refused "
                         "(checked only while the clock is synchronised)", in_range(5.0, 86_400.0)),
    },
    "control": {
        "socket": Key(str, "/run/safehouse/control.sock", "Unix control socket used by the CLI"),
        "max_clients": Key(int, 16, "control socket connections at once (one more is kept for root); "
                           "more are refused with a busy line", in_range(1, 256)),
        "idle_timeout": Key(float, 10.0, "seconds a control client has to send a complete request "
                            "line (after connecting or after its last answer) before it is closed",
                            in_range(0.5, 3600.0)),
    },
    "gpio": {
        "red": Key(int, 17, "BCM pin of the red light channel", BCM),
        "blue": Key(int, 27, "BCM pin of the blue light channel", BCM),
        "button": Key(int, 22, "BCM pin of the panic button (to GND, pull-up)", BCM),
        "buzzer": Key(int, 23, "BCM pin of the buzzer", BCM),
        "status_led": Key(int, 24, "BCM pin of the technician's link LED", BCM),
        "tamper": Key(int, None, "BCM pin of the enclosure tamper switch (absent = not wired)",
                      BCM, optional=True),
        "lamp_ok": Key(int, None, "BCM pin of the lamp current sensor (absent = not wired)",
                       BCM, optional=True),
    },
    "light": {
        "active_high": Key(bool, True, "false for relay boards that switch on a low level"),
        "day_brightness": Key(float, 1.0, "beacon brightness by day (0-1)", in_range(0.0, 1.0)),
        "night_brightness": Key(float, 0.4, "beacon brightness by night (0-1)", in_range(0.0, 1.0)),
        "night_from": Key(str, "19:00", "local time the night brightness starts (HH:MM)",
                          matches(HHMM, "HH:MM")),
        "night_until": Key(str, "07:00", "local time the night brightness ends (HH:MM)",
                           matches(HHMM, "HH:MM")),
    },
    "button": {
        "debounce_ms": Key(int, 20, "level must hold this long to count (ms)", in_range(0, 500)),
        "trigger": Key(str, "press", "'press' raises at once; 'hold' after hold_seconds",
                       one_of("press", "hold")),
        "hold_seconds": Key(float, 2.0, "hold time when trigger = 'hold'", in_range(0.1, 30.0)),
        "stuck_after": Key(float, 30.0, "held longer than this = button_stuck fault (s)",
                           in_range(1.0, 3600.0)),
    },
    "alarm": {
        "ack_timeout": Key(float, 60.0, "seconds before an unacknowledged alarm escalates",
                           in_range(1.0, 3600.0)),
        "escalate_unstaffed": Key(bool, True, "an alarm while nobody is on duty escalates at once"),
    },
    "keypad": {
        "port": Key(str, "", "serial port of the keypad ('' = none)"),
        "baud": Key(int, 9600, "keypad baud rate", one_of(1200, 2400, 4800, 9600, 19200,
                                                        38400, 57600, 115200)),
        "entry_timeout": Key(float, 10.0, "a partial entry is dropped after this silence (s)",
                             in_range(1.0, 120.0)),
        "volunteers": Key(str, "", "volunteers file ('' = volunteers.toml beside this config file)"),
        "lockout_after": Key(int, 5, "wrong PINs before the keypad locks", in_range(2, 50)),
        "lockout_seconds": Key(float, 60.0, "first lockout (s); doubles while wrong PINs continue",
                               in_range(5.0, 3600.0)),
        "rollcall_window": Key(float, 300.0, "seconds to answer a roll-call with PIN*8#",
                               in_range(1.0, 3600.0)),
        "rollcall_times": Key(list, (), "local times of a daily roll-call, e.g. [\"09:00\"]",
                              lambda v: None if all(HHMM.match(t) for t in v) else "each must be HH:MM"),
        "lockout_max_seconds": Key(float, 3600.0, "the longest a lockout grows to by doubling (s)",
                                   in_range(5.0, 86400.0)),
        "flood_keys": Key(int, 30, "more keys than this within 1 s is a flood, not a person",
                          in_range(12, 10000)),
        "flood_entries": Key(int, 3, "more entries (#) than this within 1 s is a flood",
                             in_range(1, 100)),
        "noise_ignore_seconds": Key(float, 5.0, "after a flood, keys count again once the line "
                                    "has been quiet this long (s)", in_range(0.5, 300.0)),
    },
    "buzzer": {
        "enabled": Key(bool, True, "false silences the buzzer entirely"),
        "tonal": Key(bool, False, "true for a passive piezo driven with tones (TonalBuzzer)"),
        "click": Key(bool, True, "a click on every key"),
        "ok": Key(bool, True, "a chirp when an entry is accepted"),
        "error": Key(bool, True, "three beeps when an entry is refused"),
        "chime": Key(bool, True, "the chime that summons the volunteer until the alarm is acknowledged"),
        "rollcall": Key(bool, True, "the roll-call chime"),
    },
    "logging": {
        "level": Key(str, "info", "debug | info | warning | error",
                     one_of("debug", "info", "warning", "error")),
    },
}

PIN_KEYS = ("red", "blue", "button", "buzzer", "status_led", "tamper", "lamp_ok")


def _type_name(kind: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            tuple: "a list of numbers", list: "a list of strings"}[kind]


def _coerce(kind: type, value: Any) -> tuple[bool, Any]:
    """TOML distinguishes 5 from 5.0; a technician should not have to."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return True, float(value)
    if kind is int and isinstance(value, bool):
        return False, value
    if kind is tuple:  # the only list kind: numbers, e.g. camera.offsets
        ok = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        return ok, tuple(float(v) for v in value) if ok else value
    if kind is list:  # a list of strings, e.g. keypad.rollcall_times
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, tuple(value) if ok else value
    return isinstance(value, kind), value


def check_tree(tree: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Return (effective values with defaults filled in, every problem found)."""
    problems: list[str] = []
    values: dict[str, dict[str, Any]] = {}
    for section in tree:
        if section not in SCHEMA:
            problems.append(f"{section}: unknown section (known: {', '.join(SCHEMA)})")
    for section, keys in SCHEMA.items():
        raw = tree.get(section, {})
        if not isinstance(raw, Mapping):
            problems.append(f"{section}: must be a table ([{section}])")
            raw = {}
        for name in raw:
            if name not in keys:
                problems.append(f"{section}.{name}: unknown key (known: {', '.join(keys)})")
        out: dict[str, Any] = {}
        for name, key in keys.items():
            path = f"{section}.{name}"
            if name not in raw:
                if key.default is None and not key.optional:
                    problems.append(f"{path}: required, missing ({key.doc})")
                out[name] = key.default
                continue
            ok, value = _coerce(key.kind, raw[name])
            if not ok:
                problems.append(f"{path}: must be {_type_name(key.kind)}, got {raw[name]!r}")
                out[name] = key.default
                continue
            fault = key.check(value) if key.check else None
            if fault:
                problems.append(f"{path}: {fault}")
            out[name] = value
        values[section] = out
    problems.extend(_cross_checks(values))
    return values, problems


def _cross_checks(values: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    owners: dict[int, str] = {}
    for name in PIN_KEYS:
        pin = values["gpio"].get(name)
        if pin is None:
            continue
        if pin in owners:
            problems.append(f"gpio.{name}: pin {pin} is already used by gpio.{owners[pin]}")
        else:
            owners[pin] = name
    if values["evidence"]["quota_mb"] > values["evidence"]["hard_limit_mb"]:
        problems.append("evidence.quota_mb: must not exceed evidence.hard_limit_mb")
    broker = values["broker"]
    if str(broker.get("url", "")).startswith("mqtts://"):
        for name in ("ca", "cert", "key"):
            if not broker.get(name):
                problems.append(f"broker.{name}: required when broker.url is mqtts://")
    return problems
