"""`safehouse selftest`: prove each part of a running kiosk works, one line per part.

Run on the daemon's side (its control socket, or `cmd/selftest` from the precinct), so it
tests the very objects that serve alarms. The parts' checks (device/runtime/checks.py, each
bound to its part by the assembly root) are given in the order a technician reads them; this
module runs them and records the result as a ``selftest`` event. Nothing here changes what the
public sees for more than the checks take.
"""

from __future__ import annotations

import logging
import os
import pwd
import queue
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from safehouse.device.core.inputs import Input, SelftestDone
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)
RECORD_TIMEOUT = 5.0  # how long run() waits for the core to record the selftest event

CheckFn = Callable[[], tuple[bool, str]]


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def run_checks(checks: Sequence[tuple[str, CheckFn]]) -> list[Check]:
    """Every check, in the order given; an exception fails that check only."""
    return [_run(name, fn) for name, fn in checks]


def _run(name: str, fn: CheckFn) -> Check:
    try:
        ok, detail = fn()
    except Exception as exc:
        return Check(name, False, f"{type(exc).__name__}: {exc}")
    return Check(name, ok, detail)


def process_identity() -> dict[str, Any]:
    """Who ran the checks: a check is only as good as the process it ran in (the unit's user,
    sandbox and devices, or a technician's root shell), so every answer says which."""
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return {"pid": os.getpid(), "uid": os.getuid(), "user": user,
            "systemd_invocation": os.environ.get("INVOCATION_ID") or None}


def as_dicts(checks: list[Check]) -> list[dict[str, Any]]:
    return [asdict(c) for c in checks]


class SelftestRequests:
    """Self-tests asked for on the core loop's thread (the precinct's ``cmd/selftest``), run on
    the Selftest's own thread.

    Built before the effect runner, which asks through ``ask``; the ``Selftest`` is built after
    the core loop, whose state it checks. This queue is what lets both be complete when built.
    """

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()

    def ask(self, source: str) -> None:
        """Non-blocking: the self-test runs later, off the core loop."""
        self._queue.put(source)

    def take(self) -> str | None:
        """The next source asked for; None once ``end()`` was called."""
        return self._queue.get()

    def end(self) -> None:
        self._queue.put(None)


class Selftest:
    """Runs the parts' checks and records a ``selftest`` event (602/608) through the core."""

    def __init__(self, checks: Sequence[tuple[str, CheckFn]], *, record: Callable[[Input, float], object],
                 requests: SelftestRequests) -> None:
        self._checks = tuple(checks)
        self._record, self._requests = record, requests
        self._worker = Worker(self._serve, name="selftest", wake=requests.end)

    def run(self, source: str) -> list[dict[str, Any]]:
        """Run every check now (on the caller's thread) and wait until the core recorded them."""
        checks = as_dicts(run_checks(self._checks))
        self._record(SelftestDone(tuple(checks), source), RECORD_TIMEOUT)
        return checks

    def start(self) -> None:
        """Serve the requests the core loop makes (idle, it blocks on its queue: no wake-ups)."""
        self._worker.start()

    def close(self) -> None:
        """A self-test under way is not waited for (its checks may take seconds): the thread is a
        daemon thread and ends after it."""
        self._worker.request_stop()

    def _serve(self) -> None:
        while (source := self._requests.take()) is not None and not self._worker.stopping.is_set():
            try:
                self.run(source)
            except Exception:
                _LOG.exception("selftest asked by %s failed", source)
