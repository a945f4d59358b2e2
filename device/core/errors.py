"""One exception root for the whole firmware.

Callers catch ``SafehouseError`` to handle anything we raise on purpose; subclasses also
inherit the builtin a generic caller would expect (``ValueError`` for bad config,
``OSError`` for hardware and sockets) so code that does not know us still does the right thing.
"""

from __future__ import annotations


class SafehouseError(Exception):
    """Root of every error the firmware raises deliberately."""


class ConfigError(SafehouseError, ValueError):
    """The configuration is invalid; ``problems`` lists every fault with its key path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s) in the configuration:\n{lines}")


class HardwareError(SafehouseError, OSError):
    """A driver could not open or drive its device; the message names the pin or port."""


class ControlError(SafehouseError, OSError):
    """The control socket could not be reached or answered with an error."""


class EventLogError(SafehouseError, OSError):
    """The durable event store could not be read or written."""
