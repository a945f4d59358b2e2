"""The core loop's queue, built before anything that feeds it.

Drivers, the uplink, the PIN checker, the clock jobs and the storage thread all put inputs
on this queue. It exists first, so each of them gets ``put`` in its constructor and the core
loop (which needs most of them, through the effect runner) is built last: no producer can
ever call into a loop that does not exist yet.
"""

from __future__ import annotations

import queue
import threading

from safehouse.device.core.inputs import Input

Item = tuple[Input, threading.Event | None]  # an input and, for CoreLoop.submit(), who waits for it


class Inbox:
    """Thread-safe and non-blocking for producers; read by the core loop only."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()

    def put(self, inp: Input) -> None:
        """The only thing a driver callback or another thread should ever call."""
        self.queue.put((inp, None))
