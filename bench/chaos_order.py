"""The seq rules of the MQTT contract (docs/mqtt.md, "Events"), checked on what a precinct received.

Pure functions of the received events, so the verdict depends on what the kiosk sent, never on
how fast this machine happened to be. Each event is a dict already checked for its fields
(``event_id``, ``seq``, ``type``, ``mono``, ``boot_id``; see ``chaos_precinct.parse``).

- **Issue order**: seq never goes backwards. ``mono`` is the kiosk's monotonic clock when the
  event was decided, and ``boot_id`` names the clock, so within one boot an event decided later
  must hold a higher seq, whatever order the network delivered them in.
- **Arrival order**: events arrive in seq order, with one exception the contract states. An
  alarm or a ``storage_damaged`` report the kiosk could not write is published from memory at
  once, so it may arrive ahead of older events. An alarm that was on disk goes ahead that way
  only while a damaged outbox is salvaged: from the damage (the report's ``seq_high_water``) to
  the report the outbox sends nothing, and alarms go out from memory. Nothing else ever
  arrives ahead of an older event.
- **Gaps**: every seq the precinct never received, below the highest it did, lies in the
  ``missing_seq`` range of some ``storage_damaged`` report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from safehouse.device.runtime.event_writer import SENT_FROM_MEMORY

Range = tuple[int, int]  # first, last (inclusive)


@dataclass(frozen=True)
class Finding:
    """One broken promise, and the events it concerns (a loop of runs traces them to the run
    that made them); ``at`` is an arrival time when no event can be named."""

    what: str
    text: str
    event_ids: tuple[str, ...] = ()
    seqs: Range | None = None
    at: float | None = None

    def __str__(self) -> str:
        return f"{self.what}: {self.text}"


def backwards(events: Iterable[dict[str, Any]]) -> list[Finding]:
    """Each event holding a seq below one decided before it on the same boot."""
    by_boot: dict[str, list[tuple[float, int, str]]] = defaultdict(list)
    for e in events:
        by_boot[e["boot_id"]].append((float(e["mono"]), e["seq"], e["event_id"]))
    found: list[Finding] = []
    for decided in by_boot.values():
        decided.sort()
        top, top_id = 0, ""
        for _mono, seq, eid in decided:
            if seq < top:
                found.append(Finding("seq backwards", f"seq {seq} ({short(eid)}) was issued after seq {top} "
                                     f"({short(top_id)})", (eid, top_id)))
            elif seq > top:
                top, top_id = seq, eid
    return found


def reordered(firsts: Sequence[dict[str, Any]], durable: set[str],
              held: Callable[[int, int], bool]) -> tuple[list[Finding], int]:
    """First arrivals against the contract's order: (violations, events an alarm or report sent
    from memory went ahead of, which the contract allows). ``durable``: event ids of alarms the
    kiosk said were on disk when it answered the press; ``held(alarm_seq, seq)``: a salvage
    held the drain of ``seq`` while that alarm was sent from memory anyway."""
    plain, top = (0, ""), 0
    stored_alarms: list[tuple[int, str]] = []
    violations: list[Finding] = []
    behind_memory = 0
    for e in firsts:
        seq, eid, type_ = e["seq"], e["event_id"], e["type"]
        ahead = [(a, aid) for a, aid in stored_alarms if a > seq and not held(a, seq)]
        if seq < plain[0]:
            violations.append(Finding("out of order", f"seq {seq} ({type_} {short(eid)}) arrived after seq "
                                      f"{plain[0]} ({short(plain[1])})", (eid, plain[1])))
        elif ahead:
            a, aid = max(ahead)
            violations.append(Finding("out of order", f"seq {seq} ({type_} {short(eid)}) arrived after seq "
                                      f"{a} ({short(aid)}), an alarm that was on disk, outside any "
                                      "salvage a storage_damaged report names", (eid, aid)))
        elif seq < top:
            behind_memory += 1
        top = max(top, seq)
        if type_ not in SENT_FROM_MEMORY:
            plain = max(plain, (seq, eid))
        elif eid in durable:
            stored_alarms.append((seq, eid))
    return violations, behind_memory


def salvage_windows(reports: Iterable[tuple[int, int]]) -> Callable[[int, int], bool]:
    """``held`` for ``reordered``, from (seq_high_water, seq) of each storage_damaged report: from
    the damage to its report the outbox sends nothing, and an alarm decided meanwhile goes out
    from memory ahead of everything the report's seq is above."""
    windows = list(reports)
    return lambda alarm, seq: any(high < alarm < report and seq < report for high, report in windows)


def gaps(seqs: Iterable[int]) -> list[Range]:
    """The seq ranges missing below the highest seq received (seq starts at 1)."""
    found: list[Range] = []
    last = 0
    for seq in sorted(set(seqs)):
        if seq > last + 1:
            found.append((last + 1, seq - 1))
        last = max(last, seq)
    return found


def uncovered(missing: Iterable[Range], reported: Iterable[Range]) -> list[Range]:
    """The parts of ``missing`` that no ``reported`` range covers (interval arithmetic: a seq
    range may be huge, so nothing here walks it number by number)."""
    cover = _merge(reported)
    left: list[Range] = []
    for first, last in missing:
        for lo, hi in cover:
            if hi < first or lo > last:
                continue
            if lo > first:
                left.append((first, lo - 1))
            first = hi + 1
            if first > last:
                break
        if first <= last:
            left.append((first, last))
    return left


def _merge(ranges: Iterable[Range]) -> list[Range]:
    merged: list[Range] = []
    for lo, hi in sorted(r for r in ranges if r[0] <= r[1]):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def short(event_id: str) -> str:
    """An event id short enough for a table: a uuid's first 8 characters, a short id whole."""
    return event_id if len(event_id) <= 24 else event_id[:8]


def describe(ranges: Iterable[Range]) -> str:
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in ranges) or "none"
