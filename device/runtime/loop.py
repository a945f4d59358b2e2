"""The core loop: the one thread that owns the state, fed by a queue.

Driver callbacks, the control socket and (later) the MQTT thread only ``put()`` inputs here;
the loop applies ``decide()`` and hands the effects to the shell. It sleeps on the queue
until the next deadline, so an idle kiosk costs no CPU and a deadline is never polled for.
With nothing due it sleeps until an input arrives: only systemd's watchdog needs proof that
the loop is alive, and when it runs it sets ``idle_wake`` under its own interval.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Callable, Sequence

from safehouse.device.core.alarm import decide, next_deadline
from safehouse.device.core.clock import Clock
from safehouse.device.core.effects import Effect
from safehouse.device.core.inputs import Input, Tick
from safehouse.device.core.state import CoreState
from safehouse.device.runtime.inbox import Inbox, Item

_LOG = logging.getLogger(__name__)
IDLE_WAKE = math.inf  # no wake without a reason; the watchdog lowers it so `heartbeat` stays fresh
RETRY_WAKE = 1.0  # while effects wait for a retry (e.g. disk full), try again this often

Executor = Callable[[Sequence[Effect]], bool]


class CoreLoop:
    """Owns ``CoreState``; everything else sees snapshots.

    ``executor`` runs a batch of effects and returns False when some must be retried (it
    keeps them); the loop then wakes every ``RETRY_WAKE`` seconds to let it try again.
    """

    def __init__(self, state: CoreState, execute: Executor, *, clock: Clock,
                 inbox: Inbox | None = None) -> None:
        self._state = state
        self._execute = execute
        self._clock = clock
        self._queue: queue.SimpleQueue[Item | None] = (inbox or Inbox()).queue  # producers came first
        self._cond = threading.Condition()
        self._processed = 0
        self._retrying = False
        self.heartbeat = clock.mono()
        self.idle_wake = IDLE_WAKE  # the watchdog shortens it to stay under its own interval
        self._stall: float | None = None
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, inp: Input) -> None:
        """Thread-safe and non-blocking: the only thing a callback should ever call."""
        self._queue.put((inp, None))

    def submit(self, inp: Input, timeout: float) -> CoreState | None:
        """Enqueue and wait until its effects ran (event durable); None on timeout.

        For the control socket, so `safehouse press` can say "accepted" truthfully.
        """
        done = threading.Event()
        self._queue.put((inp, done))
        return self.state if done.wait(timeout) else None

    @property
    def state(self) -> CoreState:
        with self._cond:
            return self._state

    @property
    def processed(self) -> int:
        with self._cond:
            return self._processed

    def wait_until(self, predicate: Callable[[CoreState, int], bool], timeout: float) -> CoreState | None:
        """Block until predicate(state, processed) holds; None on timeout."""
        with self._cond:
            if self._cond.wait_for(lambda: predicate(self._state, self._processed), timeout):
                return self._state
            return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="core-loop", daemon=True)
        self._thread.start()

    def run(self) -> None:
        while not self.stopping.is_set():
            item = _get(self._queue, self._wait_time())
            if item is None:
                return
            if self._stall is not None:  # `safehouse simulate core-hang`: a wedged loop, on purpose
                seconds, self._stall = self._stall, None
                _LOG.warning("core loop stalled for %.1f s (simulated)", seconds)
                self.stopping.wait(seconds)
            self.step(item[0])
            if item[1] is not None:
                item[1].set()

    def step(self, inp: Input) -> None:
        """Apply one input; exceptions are logged, never allowed to end the loop."""
        now = self._clock.mono()
        self.heartbeat = now
        try:
            state, effects = decide(self._state, inp, now)
        except Exception:
            _LOG.exception("decide() failed on %r; input dropped, state kept", inp)
            return
        try:
            self._retrying = not self._execute(effects)
        except Exception:
            _LOG.exception("executing effects of %r failed", inp)
        with self._cond:  # published after the effects ran: a snapshot never runs ahead of the disk
            self._state = state
            self._processed += 1
            self._cond.notify_all()

    def stall(self, seconds: float) -> None:
        """Sim only: make the loop stop answering for ``seconds``, to prove the watchdog."""
        self._stall = seconds
        self.put(Tick())

    def heartbeat_age(self) -> float:
        return self._clock.mono() - self.heartbeat

    def _wait_time(self) -> float | None:
        """Seconds until the next due timer (None: nothing is due, sleep until an input)."""
        wake = self.idle_wake
        deadline = next_deadline(self._state)
        if deadline is not None:
            wake = min(wake, max(0.0, deadline - self._clock.mono()))
        if self._retrying:
            wake = min(wake, RETRY_WAKE)
        return None if math.isinf(wake) else wake

    def stop(self, timeout: float = 1.0) -> None:
        self.stopping.set()
        self._queue.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)


def _get(q: queue.SimpleQueue[Item | None], timeout: float | None) -> Item | None:
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        return (Tick(), None)
