"""The storage thread: salvages a quarantined outbox after READY and brings failing storage back.

Everything slow about a failing SD card happens here, never on the core loop: the salvage of a
large damaged outbox (started only once systemd has READY=1, so a damaged card never delays
the kiosk's start), and every ``RETRY_EVERY`` seconds an attempt to reopen a faulted outbox
(full, read-only, damaged). When either changes something, the core loop is woken so the
events kept in memory are written and ``storage_damaged`` reports go out. With storage
healthy and nothing to salvage the thread sleeps until ``nudge()`` (the outbox calls it when
a write fails): an idle kiosk's storage thread never wakes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)
RETRY_EVERY = 3.0


class Store(Protocol):
    @property
    def fault(self) -> str | None: ...
    def recover(self) -> bool: ...
    def salvage(self) -> object: ...
    def salvage_due(self) -> bool: ...


class StorageWatch(Worker):
    """The "storage" thread; ``start()`` and ``close()`` come from the Worker base."""

    def __init__(self, store: Store, wake: Callable[[], None], *, every: float = RETRY_EVERY) -> None:
        super().__init__(name="storage")
        self._store, self._wake_loop, self._every = store, wake, every
        self._nudged = threading.Event()

    def nudge(self) -> None:
        """Storage just failed (any thread): start the retry rounds now."""
        self._nudged.set()

    def wake(self) -> None:
        """Worker's stop hook: end the wait so the loop sees ``stopping``."""
        self.nudge()

    def run(self) -> None:
        last = ""
        while not self.stopping.is_set():
            retry: float | None = self._every
            try:
                self._round()
                retry = self._every if self._store.fault is not None or self._store.salvage_due() else None
                last = ""
            except EventLogError as exc:  # storage still failing (a salvage on a full disk): expected
                if str(exc) != last:  # said once per kind of failure, not every round
                    _LOG.warning("storage thread: %s; trying again every %.0f s", exc, retry or 0)
                last = str(exc)
            except Exception:
                _LOG.exception("storage thread: a recovery round failed; trying again")
            self._nudged.wait(retry)
            self._nudged.clear()

    def _round(self) -> None:
        changed = False
        if self._store.fault is not None and self._store.recover():
            changed = True
        if self._store.fault is None and self._store.salvage_due():
            self._store.salvage()
            changed = True
        if changed:
            self._wake_loop()
