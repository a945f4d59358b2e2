"""Executed precinct command ids: a command id, once executed, never executes again.

Whatever the clocks do. The ids used to be kept until the kiosk's wall clock said their
freshness window was over, so a clock stepped forward by an hour (an NTP step, ``simulate
clock jump``) purged them; stepped back after a restart, a recorded command was fresh again
and ran a second time. And with the clock unsynced (every Pi until NTP answers) an id with
``ts`` in year 9999 was kept for ever, so 1,024 of them pushed every real id out.

So time here is the SENDER's: each id is kept with the command's own ``ts``. Over ``CAP``
ids, the one with the smallest ``ts`` is evicted and the ``watermark`` (the largest ``ts``
ever evicted) rises to it; a command whose ``ts`` is at or below the watermark is refused as
``too_old``, because it may be one of those evicted. The kiosk's clock plays no part, so no
jump of it can reopen an id; a sender's far-future ids only ever push the watermark up, never
make a real id executable again. The kiosk's clock bounds ``ts`` only where it can be trusted:
while it is synchronised, a ``ts`` outside the freshness window is refused as ``stale``
(device/core/precinct_commands.py). services/command_ids.py keeps the same ids and watermark
on disk with the same rule, so the core and the file agree after every command and restart.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass

from safehouse.device.core.clock import iso_utc

CAP = 1024  # ids kept, in the core and on disk (services/command_ids.py)


@dataclass(frozen=True)
class ExecutedCommands:
    """``entries``: (sender's ts, id), ascending; ``watermark``: the largest ts evicted, if any."""

    entries: tuple[tuple[float, str], ...] = ()
    watermark: float | None = None
    cap: int = CAP

    def refusal(self, command_id: str, ts: float) -> tuple[str, str] | None:
        """(reason, explanation) when the command must not run; None when it may."""
        if any(cid == command_id for _, cid in self.entries):
            return "replayed", f"duplicate command id {command_id!r}: already executed"
        if self.watermark is not None and ts <= self.watermark:
            return "too_old", (f"ts {_when(ts)} is not after {_when(self.watermark)}, the newest ts among "
                               f"the {self.cap}+ command ids no longer kept: it may have run already")
        return None

    def add(self, command_id: str, ts: float) -> ExecutedCommands:
        """With ``command_id`` executed at the sender's ``ts``; the smallest evicted beyond ``cap``."""
        entries = list(self.entries)
        insort(entries, (ts, command_id))
        return evict(entries, self.watermark, self.cap)


def evict(entries: list[tuple[float, str]], watermark: float | None, cap: int) -> ExecutedCommands:
    """The ``cap`` entries with the largest (ts, id); the watermark raised past what was dropped.
    The one rule the core and the store both apply (``entries`` ascending)."""
    dropped, kept = entries[:-cap], entries[-cap:]  # cap >= 1
    if dropped:
        newest = dropped[-1][0]
        watermark = newest if watermark is None else max(watermark, newest)
    return ExecutedCommands(tuple(kept), watermark, cap)


def _when(ts: float) -> str:
    try:
        return iso_utc(ts)
    except (OverflowError, OSError, ValueError):
        return f"{ts:.0f}"
