"""One eviction pass over the evidence store: which event folders go, in which order.

The order is the whole point (see ``evidence.py``): delivered evidence goes first, oldest
first; undelivered evidence goes only past the hard limit, and is reported. The owner's
``delivered(event_id)`` predicate is asked once per event per pass; if it fails the event
counts as not delivered, the side on which nothing unsent is lost by mistake.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from safehouse.device.core.settings import in_range, setting
from safehouse.services.evidence_fs import Folder, remove_folder

_LOG = logging.getLogger(__name__)

Delivered = Callable[[str], bool]


@dataclass(frozen=True)
class EvictionReport:
    """Event folders deleted, in deletion order (oldest first per step), in two disjoint lists:
    ``evicted`` were delivered; ``evicted_undelivered`` were not (the owner raises a fault for
    each). ``bytes_*``: the store's total before and after the pass."""

    evicted: list[str]
    evicted_undelivered: list[str]
    bytes_before: int
    bytes_after: int


def ask(delivered: Delivered, event_id: str, default: bool | None) -> bool | None:
    """The owner's answer; if it fails, ``default`` (the safe side: not delivered, so kept)."""
    try:
        return bool(delivered(event_id))
    except Exception:
        _LOG.exception("evidence: cannot tell whether event %s was delivered; treating it as not delivered",
                       event_id)
        return default


class Eviction:
    """Book-keeping of one pass (the caller holds the store's lock): what is left, what went."""

    def __init__(self, root_fd: int, folders: list[Folder], delivered: Delivered) -> None:
        self._root_fd = root_fd
        self._folders = folders
        self._delivered = delivered
        self._answers: dict[str, bool] = {}
        self._gone: set[str] = set()
        self.evicted: list[str] = []
        self.lost: list[str] = []
        self.before = self.total = sum(f.total_bytes for f in folders)

    def is_delivered(self, event_id: str) -> bool:
        if event_id not in self._answers:
            self._answers[event_id] = bool(ask(self._delivered, event_id, False))
        return self._answers[event_id]

    def left(self) -> list[Folder]:
        """Folders not evicted yet, oldest first (a copy: evicting while iterating is fine)."""
        return [f for f in self._folders if f.event_id not in self._gone]

    def evict(self, folder: Folder) -> bool:
        if not remove_folder(self._root_fd, folder.event_id):
            return False
        self._gone.add(folder.event_id)
        (self.evicted if self.is_delivered(folder.event_id) else self.lost).append(folder.event_id)
        self.total -= folder.total_bytes
        return True

    def retention(self, cutoff: float) -> None:
        """Delivered events created before ``cutoff`` go; undelivered ones stay."""
        kept = 0
        for f in self.left():
            if f.created < cutoff:
                if self.is_delivered(f.event_id):
                    self.evict(f)
                else:
                    kept += 1
        if kept:
            _LOG.info("evidence: keeping %d undelivered event(s) past their retention: not sent yet", kept)

    def down_to(self, limit: int, *, delivered: bool) -> list[str]:
        """Evict the oldest delivered (or undelivered) events until the total is <= ``limit``."""
        went: list[str] = []
        for f in self.left():
            if self.total <= limit:
                break
            if self.is_delivered(f.event_id) == delivered and self.evict(f):
                went.append(f.event_id)
        return went

    def older_than(self, cutoff: float, *, include_undelivered: bool) -> None:
        """``safehouse evidence purge``: events created before ``cutoff``; undelivered only if asked."""
        for f in self.left():
            if f.created >= cutoff:
                continue
            sent = self.is_delivered(f.event_id)
            if (sent or include_undelivered) and self.evict(f) and not sent:
                _LOG.warning("evidence: purged undelivered evidence of event %s (%d bytes) on request",
                             f.event_id, f.total_bytes)

    def report(self) -> EvictionReport:
        if self.evicted or self.lost:
            _LOG.info("evidence: deleted %d delivered and %d undelivered event folder(s); %d -> %d bytes",
                      len(self.evicted), len(self.lost), self.before, self.total)
        return EvictionReport(list(self.evicted), list(self.lost), self.before, self.total)


@dataclass(frozen=True)
class EvidenceSettings:
    """[evidence]: how much evidence stays on disk, and for how long."""

    quota_mb: float = setting(512.0, "evidence kept on disk; past it the oldest delivered goes first",
                              in_range(1.0, 1_000_000.0))
    hard_limit_mb: float = setting(1024.0, "only past this is undelivered evidence evicted (a fault)",
                                   in_range(1.0, 1_000_000.0))
    retention_days: float = setting(30.0, "delivered evidence is deleted after this many days",
                                    in_range(0.0, 3650.0))

    def cross_problems(self, section: str) -> list[str]:
        """A quota above the hard limit would evict undelivered evidence before delivered."""
        if self.quota_mb > self.hard_limit_mb:
            return [f"{section}.quota_mb: must not exceed {section}.hard_limit_mb"]
        return []
