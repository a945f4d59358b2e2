"""Lanes of the control socket: each kind of request waits for workers of its own.

Why: a handler may wait on something slow. ``snapshots`` waits on the camera, ``selftest`` on
every part's check, ``press``/``ack``/``resolve`` on the core loop's answer (3 s when it
stalls), ``status`` on the outbox's lock. On one shared pool, four ``snapshots`` on a hung
camera held every worker and ``status`` and ``press`` timed out for up to 11 minutes (issue 18).

So the control socket's pool only reads a request and hands it to the lane its handler is on
(``on_lane()`` in the handler table); each lane has its own workers and a bound on how many
requests may wait for them, past which a request is answered ``busy`` at once instead of
queueing. A lane that is stuck holds only its own workers: ``status`` never waits behind the
core, and nothing a technician needs waits behind a camera.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from safehouse.device.core.threads import Worker
from safehouse.services.control_conn import Conn

__all__ = ["CORE", "PART", "READ", "Handoff", "Lane", "LaneWorkers", "OnLane", "on_lane"]

_SERVING = threading.local()  # the lane a worker thread serves (unset on the pool's threads)


@dataclass(frozen=True)
class Lane:
    """A kind of request by what its handler waits on: ``workers`` run them, ``waiting`` more may
    queue for a worker, and one more is refused with ``busy: {busy}``."""

    name: str
    workers: int
    waiting: int
    busy: str


READ = Lane("read", 2, 16, "16 requests are waiting to read the kiosk's state; try again")
# Each waits CONFIRM_TIMEOUT (3 s) at most, so the last of 4 + 8 answers within ~9 s even when
# the core is stalled: inside the CLI's 10 s, where a longer queue would only time out.
CORE = Lane("core", 4, 8, "12 requests are waiting for the core loop; try again")
# The camera and the microphone serve one caller at a time anyway, and the self-test checks both.
PART = Lane("part", 1, 0, "a camera, microphone or self-test request is already running (they run "
            "one at a time); try again when it has finished")


@dataclass(frozen=True)
class Handoff:
    """What an ``OnLane`` handler answers on the pool: run me on ``lane``."""

    lane: Lane


@dataclass(frozen=True)
class OnLane:
    """A handler that runs on ``lane``'s workers; on any other thread it only says so."""

    lane: Lane
    handler: Callable[[Mapping[str, Any]], Any]

    def __call__(self, request: Mapping[str, Any]) -> Any:
        if getattr(_SERVING, "lane", None) == self.lane:
            return self.handler(request)
        return Handoff(self.lane)


def on_lane(lane: Lane, handler: Callable[[Mapping[str, Any]], Any]) -> OnLane:
    return OnLane(lane, handler)


class LaneWorkers:
    """One lane's workers in one control socket; ``run(conn, line)`` answers a request."""

    def __init__(self, lane: Lane, run: Callable[[Conn, bytes], None]) -> None:
        self.lane, self._run = lane, run
        self._jobs: queue.SimpleQueue[tuple[Conn, bytes] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._taken = 0  # running + waiting
        self.workers = [Worker(self._work, name=f"control-{lane.name}-{i}", wake=lambda: self._jobs.put(None))
                        for i in range(lane.workers)]

    def offer(self, conn: Conn, line: bytes) -> bool:
        """Queue the request for a worker of this lane; False when the lane is full (say busy)."""
        with self._lock:
            if self._taken >= self.lane.workers + self.lane.waiting:
                return False
            self._taken += 1
        self._jobs.put((conn, line))
        return True

    def _work(self) -> None:
        _SERVING.lane = self.lane
        while (job := self._jobs.get()) is not None:
            try:
                self._run(*job)
            finally:
                with self._lock:
                    self._taken -= 1
