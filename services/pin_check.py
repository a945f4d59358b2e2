"""PIN checks off the core loop: scrypt costs ~2 ms here, ~20 ms on a Pi Zero 2 W, per hash, on purpose.

One worker thread takes ``VerifyPin`` requests in order and answers each with a
``PinChecked`` input on the core queue. The registry is re-read when its file changes
(checked at most every ``reload_every`` seconds) or on ``reload()`` (SIGHUP), so a volunteer
added with `safehouse volunteer add` can use the keypad within seconds, with no restart.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from safehouse.device.core.inputs import Input, PinChecked
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)


class PinChecker(Worker):
    """The "pin-check" thread; ``close()`` comes from the Worker base, its wake-up is a None request."""

    def __init__(self, load: Callable[[], Any], put: Callable[[Input], None], *,
                 reload_every: float = 3.0) -> None:
        super().__init__(name="pin-check", join_seconds=1.0)
        self._load, self._put, self._reload_every = load, put, reload_every
        self._registry: Any = None
        self._checked_at = float("-inf")
        self._force = threading.Event()
        self._requests: queue.SimpleQueue[tuple[int, str, str] | None] = queue.SimpleQueue()

    @property
    def registry(self) -> Any:
        return self._registry

    def start(self) -> None:
        self._refresh()
        super().start()

    def check(self, entry: int, pin: str, action: str) -> None:
        """Non-blocking: the answer arrives later as a PinChecked input."""
        self._requests.put((entry, pin, action))

    def reload(self) -> None:
        """Re-read the volunteers file before the next check (SIGHUP)."""
        self._force.set()

    def _refresh(self) -> None:
        now = time.monotonic()
        if not self._force.is_set() and now - self._checked_at < self._reload_every:
            return
        self._force.clear()
        self._checked_at = now
        try:
            fresh = self._load() if self._registry is None else self._registry.reloaded_if_changed()
        except Exception as exc:  # a broken edit keeps the last good registry
            _LOG.error("volunteers file not reloaded, keeping the previous one: %s", exc)
            return
        if fresh is not self._registry:
            self._registry = fresh
            if not getattr(fresh, "problems", None):  # a bad edit is logged by the registry itself
                _LOG.info("volunteers loaded: %d enrolled", len(fresh.volunteers))

    def wake(self) -> None:
        self._requests.put(None)

    def run(self) -> None:
        while not self.stopping.is_set():
            item = self._requests.get()
            if item is None:
                return
            entry, pin, action = item
            self._refresh()
            match = None
            try:
                match = self._registry.verify(pin) if self._registry is not None else None
            except Exception:
                _LOG.exception("PIN check failed; counted as not recognised")
            self._put(PinChecked(entry, action, match.volunteer.id if match else None,
                                 bool(match and match.duress)))
