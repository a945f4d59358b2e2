"""The config sections of the kiosk as a whole (no one driver or service owns them).

Drivers and services declare their own sections beside their code; these five belong to the
core and the daemon: who the kiosk is, how its alarm escalates, how old a precinct command may
be, how long a neighbour's alarm shows, and how much it logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from safehouse.device.core.settings import (
    ID_TEXT,
    IDENT,
    REQUIRED,
    as_path,
    in_range,
    matches,
    one_of,
    setting,
)


@dataclass(frozen=True)
class DeviceSettings:
    """[device]: the kiosk's identity, its hardware and where it keeps durable state."""

    id: str = setting(REQUIRED, "kiosk identity, also the MQTT client id", matches(IDENT, ID_TEXT))
    precinct: str = setting(REQUIRED, "precinct the kiosk reports to", matches(IDENT, ID_TEXT))
    alliance: str = setting("", "neighbourhood alliance id ('' = none)",
                            matches(IDENT, ID_TEXT, allow_empty=True))
    hardware: str = setting("pi", "'pi' (real GPIO) or 'sim' (gpiozero MockFactory)", one_of("pi", "sim"))
    state_dir: Path = setting("/var/lib/safehouse", "durable state: outbox, evidence, daily counts",
                              convert=as_path)


@dataclass(frozen=True)
class AllianceSettings:
    """[alliance]: how the kiosk shows a neighbour's alarm."""

    show_seconds: float = setting(120.0, "how long a neighbour's alarm shows as the 'neighbor' light",
                                  in_range(1.0, 3600.0))


@dataclass(frozen=True)
class CommandsSettings:
    """[commands]: precinct commands over MQTT."""

    freshness: float = setting(300.0, "precinct commands older than this (s) are refused "
                               "(checked only while the clock is synchronised)", in_range(5.0, 86_400.0))


@dataclass(frozen=True)
class AlarmSettings:
    """[alarm]: when an alarm escalates."""

    ack_timeout: float = setting(60.0, "seconds before an unacknowledged alarm escalates",
                                 in_range(1.0, 3600.0))
    escalate_unstaffed: bool = setting(True, "an alarm while nobody is on duty escalates at once")


@dataclass(frozen=True)
class LoggingSettings:
    """[logging]: how much the daemon writes to the journal."""

    level: str = setting("info", "debug | info | warning | error",
                         one_of("debug", "info", "warning", "error"))
