"""The one worker-thread base every driver and service thread is run by.

Each worker used to carry its own copy of the same stop code (a ``_stopping`` Event, a
``_closed`` flag, a ``_JOIN_SECONDS`` and a join that logged when it timed out). A thread
stuck in a driver call must never hang the daemon's shutdown, so ``stop()`` waits a bounded
time and then *reports* the thread stuck (once in the log, in ``stuck`` and in its return
value) instead of waiting on; the thread is a daemon thread, so it cannot keep the process
alive either.

Two ways to use it:

- own one: ``self._worker = Worker(self._run, name="buzzer-18", wake=self._wake.set)``; the
  owner's ``close()`` calls ``self._worker.stop()`` and then releases its pins;
- subclass it: override ``run()`` (and ``wake()`` if the loop blocks on something other than
  ``stopping``); ``start()`` / ``close()`` come with the class.

The loop polls nothing on the base's account: it waits on ``stopping`` (or on the owner's own
Event, which the ``wake`` hook sets), so an idle worker costs no wake-ups.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from safehouse.device.core.closing import Closing

_LOG = logging.getLogger(__name__)

JOIN_SECONDS = 2.0  # how long stop() waits for a worker before reporting it stuck


class Worker(Closing):
    """A named daemon thread running ``target`` (or ``run()``) until ``stopping`` is set.

    ``wake`` is called by ``stop()`` right after ``stopping`` is set, to end whatever the
    worker blocks on (set its Event, write to its self-pipe, kill its child process).
    ``stop()`` is safe to call from any thread, the worker's own included, and any number of
    times; only the first call requests the stop, every call reports whether the thread ended.
    """

    def __init__(self, target: Callable[[], object] | None = None, *, name: str,
                 wake: Callable[[], object] | None = None,
                 join_seconds: float = JOIN_SECONDS) -> None:
        self.name = name
        self.stopping = threading.Event()
        self.join_seconds = join_seconds
        self._target = target
        self._wake_hook = wake
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stuck = False

    def __repr__(self) -> str:
        state = ("stuck" if self.stuck else "stopping" if self.stopping.is_set()
                 else "running" if self.is_alive else "idle")
        return f"<{type(self).__name__} {self.name!r} {state}>"

    # -- what a subclass overrides ---------------------------------------------------------

    def run(self) -> None:
        """The thread's body; by default the ``target`` given to the constructor."""
        if self._target is not None:
            self._target()

    def wake(self) -> None:
        """End the worker's wait so it sees ``stopping``; by default the ``wake`` hook."""
        if self._wake_hook is not None:
            self._wake_hook()

    # -- life cycle --------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def is_alive(self) -> bool:
        """True while the thread runs (also while it is being stopped, or stuck)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def stuck(self) -> bool:
        """True when ``stop()`` gave up waiting and the thread is still running."""
        return self._stuck and self.is_alive

    def start(self) -> None:
        """Start the thread; a second call is a no-op, a call after ``stop()`` an error."""
        with self._lock:
            if self.stopping.is_set():
                raise RuntimeError(f"{self!r} was stopped; make a new one")
            if self._thread is not None:
                return
            thread = threading.Thread(target=self.run, name=self.name, daemon=True)
            self._thread = thread
        thread.start()

    def request_stop(self) -> bool:
        """Set ``stopping`` and wake the worker without waiting; True on the first call only."""
        with self._lock:
            if self.stopping.is_set():
                return False
            self.stopping.set()
        try:
            self.wake()
        except Exception:
            _LOG.exception("%r: waking the worker failed; it stops at its next wake-up", self)
        return True

    def stop(self, timeout: float | None = None) -> bool:
        """Request the stop and wait up to ``timeout`` (default ``join_seconds``) for the thread.

        Returns True when the thread has ended (or never started, or is the caller: it ends
        as soon as it returns), False when it is stuck: logged once, and later calls without
        an explicit ``timeout`` return at once instead of waiting again.
        """
        self.request_stop()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        if not self._stuck or timeout is not None:
            wait = self.join_seconds if timeout is None else timeout
            thread.join(wait)
            if thread.is_alive() and not self._stuck:
                self._stuck = True
                _LOG.warning("thread %s did not stop within %.1f s; left running as a daemon "
                             "thread, reported stuck", self.name, wait)
        return not thread.is_alive()

    def close(self, timeout: float | None = None) -> None:
        """``stop()`` for ``with`` blocks and owners that only close; safe to repeat."""
        self.stop(timeout)
