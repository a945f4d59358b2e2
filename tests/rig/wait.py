"""Waiting for something a worker thread or another process does, without sleeping a fixed time."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_SECONDS = 0.005


def wait_for(predicate: Callable[[], object], timeout: float = 3.0) -> bool:
    """Poll ``predicate`` until it is true (True) or ``timeout`` seconds pass (False).

    It is asked once more at the deadline, so a condition that became true during the last
    sleep still counts. Use it as ``assert wait_for(...)``: a False is the test's failure.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(POLL_SECONDS)
    return bool(predicate())
