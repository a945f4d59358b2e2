"""The keypad as a part: [keypad] settings (serial line, volunteers file, lockout, roll-call) and factory.

Apart from ``keypad.py`` (already the size a module should stop at), which is imported only
when a keypad is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safehouse.device.core.settings import HHMM, Rule, as_path_or, in_range, one_of, setting

if TYPE_CHECKING:
    from safehouse.drivers.keypad import Keypad

_EACH_HHMM = Rule(lambda v: None if all(HHMM.fullmatch(t) for t in v) else "each must be HH:MM",
                  {"items": {"type": "string", "pattern": HHMM.pattern}})


@dataclass(frozen=True)
class KeypadSettings:
    """[keypad]: the volunteers' keypad, their PINs, lockouts and roll-calls."""

    port: str = setting("", "serial port of the keypad ('' = none)")
    baud: int = setting(9600, "keypad baud rate",
                        one_of(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))
    entry_timeout: float = setting(10.0, "a partial entry is dropped after this silence (s)",
                                   in_range(1.0, 120.0))
    volunteers: Path = setting("", "volunteers file ('' = volunteers.toml beside this config file)",
                               convert=as_path_or("volunteers.toml"))
    lockout_after: int = setting(5, "wrong PINs before the keypad locks", in_range(2, 50))
    lockout_seconds: float = setting(60.0, "first lockout (s); doubles while wrong PINs continue",
                                     in_range(5.0, 3600.0))
    rollcall_window: float = setting(300.0, "seconds to answer a roll-call with PIN*8#",
                                     in_range(1.0, 3600.0))
    rollcall_times: tuple[str, ...] = setting((), "local times of a daily roll-call, e.g. [\"09:00\"]",
                                              _EACH_HHMM)
    lockout_max_seconds: float = setting(3600.0, "the longest a lockout grows to by doubling (s)",
                                         in_range(5.0, 86400.0))
    flood_keys: int = setting(30, "more keys than this within 1 s is a flood, not a person",
                              in_range(12, 10000))
    flood_entries: int = setting(3, "more entries (#) than this within 1 s is a flood", in_range(1, 100))
    noise_ignore_seconds: float = setting(5.0, "after a flood, keys count again once the line "
                                          "has been quiet this long (s)", in_range(0.5, 300.0))


def port_of(settings: KeypadSettings, *, simulated: bool) -> str:
    """The serial line to open: the configured one; simulated, a ``loop://`` keypad if none."""
    return settings.port or ("loop://" if simulated else "")


def build(settings: KeypadSettings, *, simulated: bool) -> Keypad | None:
    """Open the keypad with its flood guard, or nothing when no port is configured (real hardware)."""
    port = port_of(settings, simulated=simulated)
    if not port:
        return None
    from safehouse.drivers.keypad import Keypad
    from safehouse.drivers.keypad_guard import FloodGuard

    guard = FloodGuard(max_keys=settings.flood_keys, max_entries=settings.flood_entries,
                       ignore_s=settings.noise_ignore_seconds)
    return Keypad(port, baud=settings.baud, guard=guard)
