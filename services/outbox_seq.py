"""Where seq continues when no lease vouches for it, and the report of every seq skipped.

Seq is how the precinct orders a kiosk's events and spots what is missing, so two promises
hold whatever befell the files: no seq ever names two events, and every skipped seq is
reported (``storage_damaged``, ``missing_seq``).

- No readable, plausible ``seq.lease`` (garbled, forged, a link, far below the outbox's own
  mark; or gone while anything of the outbox is left): ``unvouched`` continues above the
  outbox's own mark (services/outbox_mark.py), read from its database file, or from its pages
  when SQLite cannot read it, and reports the lease with the range from the outbox's last seq
  up to there. A copy not believed while the other copy vouches is reported, without a jump.
- A stored seq that skips ahead of every seq stored before it (the rest of a lease block after
  a crash while storage failed, events dropped from memory, a jump above): ``gap`` turns it into
  a report, unless a report already accounts for those seqs (a quarantined outbox's). Stored
  events the card garbled (found by the drain) are reported the same way (``GARBLED``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from safehouse.services.outbox_damage import Damage
from safehouse.services.outbox_mark import MARK_AHEAD, read_mark, unvouched_floor
from safehouse.services.outbox_salvage import seq_of_damaged
from safehouse.services.outbox_schema import FILENAME
from safehouse.services.outbox_walk import MARK_KEYS, walk_marks
from safehouse.services.quarantine import FOLDER, quarantined
from safehouse.services.seq_lease import NAME, SeqLease

_LOG = logging.getLogger(__name__)
GAP_REASON = ("seqs were issued that the outbox never stored (held in memory while storage failed, "
              "then lost at a stop or dropped from memory)")
GARBLED = "stored events the card garbled: not sent (their payload is no longer the event)"
RANGES = (GAP_REASON, GARBLED)


def unvouched(lease: SeqLease, path: Path, now: float) -> Damage | None:
    """The report of a lease copy not believed; when nothing vouches for the highest seq issued,
    its ``high`` is where seq continues. None when every copy present checks out."""
    mark = read_mark(path)
    problems = list(lease.problems)
    if lease.found and mark is not None and lease.high < mark.mark - MARK_AHEAD:
        # the lease is never that far below the file's own mark (set MARK_AHEAD above it): an old
        # copy (written where the runtime copy was not), or a forged one that looks sound
        problems.append(f"{NAME} ({lease.high}) is older than {FILENAME}'s own mark ({mark.mark})")
        lease_found = False
    else:
        lease_found = lease.found
    if lease_found and problems:  # another copy vouches: the bad one is rewritten from it
        why = "; ".join(problems)
        _LOG.critical("seq lease: %s; rebuilt from the copy that checks out (%d), reported", why, lease.high)
        return Damage(file=NAME, reason=f"{why}; rebuilt from the copy that checks out", quarantined=None,
                      high=lease.high, salvaged_done=True)
    legacy = mark is not None and mark.legacy  # a file from before the mark: its own seq rules
    if lease_found or not (problems or (mark is not None and mark.mark) or (traces(path) and not legacy)):
        return None
    stored = max(0 if mark is None else mark.last_seq, seq_of_damaged(path))  # with the WAL's commits
    found = {"seq_mark": 0 if mark is None else mark.mark, "last_seq": stored}
    if not found["seq_mark"] and _has_pages(path):  # the file's own marks unreadable: its pages
        walked = walk_marks(path)  # (frames SQLite would ignore too: only ever a higher floor)
        found = {key: max(found.get(key, 0), walked.get(key, 0)) for key in MARK_KEYS}
    if not found["seq_mark"]:  # what the quarantined copies remember counts too
        for copy in quarantined(path.parent / FOLDER):
            found["last_seq"] = max(found["last_seq"], seq_of_damaged(copy))
    floor = unvouched_floor(found, now)
    why = "; ".join(problems) or f"{NAME} is gone though {FILENAME} says seqs were issued"
    _LOG.critical("seq lease: %s; nothing vouches for the highest seq issued: seq continues above %d, "
                  "reported", why, floor)
    # the range starts after the last seq the outbox holds (what it holds is not reported missing)
    return Damage(file=NAME, reason=f"{why}; seq continues above {floor}", quarantined=None, high=floor,
                  lo=stored + 1, salvaged_done=True)


def traces(path: Path) -> bool:
    """Is there anything left of an outbox that issued seqs (its files, links, quarantined copies)?"""
    if any(os.path.lexists(path.with_name(path.name + s)) for s in ("", "-wal", "-shm")):
        return True
    return bool(quarantined(path.parent / FOLDER))


def _has_pages(path: Path) -> bool:
    try:
        return os.lstat(path).st_size >= 1024 and path.is_file() and not path.is_symlink()
    except OSError:
        return False


def covered(reports: list[Damage], high: int) -> bool:
    """Does a report of this run already account for every seq up to ``high``?"""
    return any(d.high >= high and d.reason not in RANGES and (d.file == FILENAME or d.lo is not None)
               for d in reports)


def gap(pending: list[Damage], lo: int, high: int, reason: str) -> Damage:
    """The report of seqs ``lo``..``high`` lost (``reason``): a pending one widened, or a new one."""
    for damage in pending:
        if damage.reason == reason and damage.lo is not None:
            damage.lo, damage.high = min(damage.lo, lo), max(damage.high, high)
            return damage
    _LOG.critical("outbox: seq %d..%d lost (%s): reported", lo, high, reason)
    damage = Damage(file=FILENAME, reason=reason, quarantined=None, high=high, lo=lo, salvaged_done=True)
    pending.append(damage)
    return damage
