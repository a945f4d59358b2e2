"""Where seq continues when no lease vouches for it, and the report of every seq skipped.

Seq is how the precinct orders a kiosk's events and spots what is missing, so two promises
hold whatever befell the files: no seq ever names two events, and every skipped seq is
reported (``storage_damaged``, ``missing_seq``).

- No readable, plausible ``seq.lease`` (garbled, forged, a link; or gone while the outbox says
  it had one): ``unvouched`` continues above the outbox's own mark (services/outbox_mark.py),
  read from its database file, or from its pages when SQLite cannot read it, and reports the
  lease with the range from the outbox's last seq up to there.
- A stored seq that skips ahead of every seq stored before it (the rest of a lease block after
  a crash while storage failed, events dropped from memory, a jump above): ``gap`` turns it into
  a report, unless a report already accounts for those seqs (a quarantined outbox's).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from safehouse.services.outbox_damage import Damage
from safehouse.services.outbox_mark import read_mark, unvouched_floor
from safehouse.services.outbox_salvage import seq_of_damaged
from safehouse.services.outbox_schema import FILENAME
from safehouse.services.outbox_walk import MARK_KEYS, walk_marks
from safehouse.services.seq_lease import NAME, SeqLease

_LOG = logging.getLogger(__name__)
GAP_REASON = ("seqs were issued that the outbox never stored (held in memory while storage failed, "
              "then lost at a stop or dropped from memory)")


def unvouched(lease: SeqLease, path: Path) -> Damage | None:
    """The report of a lease copy not believed; when nothing vouches for the highest seq issued,
    its ``high`` is where seq continues. None when every copy present checks out."""
    mark = read_mark(path)
    if lease.found and lease.problems:  # another copy vouches: the bad one is rewritten from it
        why = "; ".join(lease.problems)
        _LOG.critical("seq lease: %s; rebuilt from the copy that checks out (%d), reported", why, lease.high)
        return Damage(file=NAME, reason=f"{why}; rebuilt from the copy that checks out", quarantined=None,
                      high=lease.high, salvaged_done=True)
    if lease.found or not (lease.problems or (mark is not None and mark.mark)):
        return None
    found = {"seq_mark": mark.mark, "last_seq": mark.last_seq} if mark is not None else {}
    found["last_seq"] = max(found.get("last_seq", 0), seq_of_damaged(path))  # the WAL's commits too
    if not found.get("seq_mark") and _has_pages(path):  # the file's own marks unreadable: its pages
        walked = walk_marks(path)
        found = {key: max(found.get(key, 0), walked.get(key, 0)) for key in MARK_KEYS}
    floor = unvouched_floor(found)
    why = "; ".join(lease.problems) or f"{NAME} is gone though {FILENAME} says seqs were issued"
    _LOG.critical("seq lease: %s; nothing vouches for the highest seq issued: seq continues above %d, "
                  "reported", why, floor)
    return Damage(file=NAME, reason=f"{why}; seq continues above {floor}", quarantined=None, high=floor,
                  lo=found.get("last_seq", 0) + 1, salvaged_done=True)


def _has_pages(path: Path) -> bool:
    try:
        return os.lstat(path).st_size >= 1024 and path.is_file() and not path.is_symlink()
    except OSError:
        return False


def covered(reports: list[Damage], high: int) -> bool:
    """Does a report of this run already account for every seq up to ``high``?"""
    return any(d.high >= high and d.reason != GAP_REASON and (d.file == FILENAME or d.lo is not None)
               for d in reports)


def gap(pending: list[Damage], lo: int, high: int) -> Damage:
    """The report of seqs ``lo``..``high`` skipped: a pending gap report widened, or a new one."""
    for damage in pending:
        if damage.reason == GAP_REASON and damage.lo is not None:
            damage.lo, damage.high = min(damage.lo, lo), max(damage.high, high)
            return damage
    _LOG.critical("outbox: seq %d..%d may have been issued and never stored: reported", lo, high)
    damage = Damage(file=FILENAME, reason=GAP_REASON, quarantined=None, high=high, lo=lo, salvaged_done=True)
    pending.append(damage)
    return damage
