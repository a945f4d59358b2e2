"""The technician's side of `safehouse accept`: prompts, answers, and the kiosk's events.

Every hands-on step prints one prompt line starting ``>>> [step]`` (a script or a test
answering the prompts matches on it), then waits for the matching event from the daemon
while reading the technician's answer on stdin at the same time: ``s`` skips the step,
``f`` fails it ("it did not work"). Events are read from the outbox the daemon writes
(`safehouse events`), never from anything this process does itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from safehouse.device.core.events import Event
from safehouse.services.outbox import read_events

_LOG = logging.getLogger(__name__)
POLL = 0.5


class Console:
    """Prompts on ``out``; answers read from ``inp`` by a thread, so waiting never blocks on it."""

    def __init__(self, inp: IO[str], out: IO[str]) -> None:
        self._out = out
        self._answers: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(inp,), name="accept-stdin", daemon=True).start()

    def _read(self, inp: IO[str]) -> None:
        try:
            for line in inp:
                self._answers.put(line.strip().lower())
        except (OSError, ValueError):
            pass
        self._answers.put("eof")

    def say(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def prompt(self, tag: str, text: str) -> None:
        self.say(f">>> [{tag}] {text}")

    def answer(self, timeout: float) -> str | None:
        """The next line typed within ``timeout`` s ("eof" once stdin is closed), else None."""
        try:
            answer = self._answers.get(timeout=timeout)
        except queue.Empty:
            return None
        if answer == "eof":
            self._answers.put("eof")  # stays closed: later waits see it at once
        return answer


class EventWatch:
    """Follows the kiosk's recorded events in a thread; steps ask for new ones after a mark."""

    def __init__(self, state_dir: Path) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.error: str | None = None
        self._thread = threading.Thread(target=self._follow, args=(state_dir,), name="accept-events",
                                        daemon=True)
        self._thread.start()

    def _follow(self, state_dir: Path) -> None:
        try:
            for event in read_events(state_dir, follow=True, stop=self._stop, poll=POLL):
                with self._lock:
                    self._events.append(event)
        except Exception as exc:
            self.error = f"cannot read the kiosk's events in {state_dir}: {exc}"
            _LOG.error("%s", self.error)

    def find(self, after: int, match: Callable[[Event], bool]) -> Event | None:
        with self._lock:
            return next((e for e in self._events if e.seq > after and match(e)), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2.0)


def wait_for(console: Console, tag: str, instruction: str, timeout: float,
              check: Callable[[], str | None]) -> tuple[str, str]:
    """Prompt, then wait until ``check()`` returns a detail, the technician answers, or time is up.

    Returns (status, detail): ("pass", what was seen), ("skip", ...), ("fail", why).
    """
    console.prompt(tag, f"{instruction}  [waiting up to {timeout:g} s; type s + Enter to skip, "
                   "f + Enter if it does not work]")
    deadline = time.monotonic() + timeout
    closed = False
    while True:
        seen = check()
        if seen is not None:
            console.say(f"    ok: {seen}")
            return "pass", seen
        left = deadline - time.monotonic()
        if left <= 0:
            break
        answer = None if closed else console.answer(min(POLL, left))
        if answer is None or answer == "":
            if closed:
                time.sleep(min(POLL, left))
            continue
        if answer == "eof":
            closed = True
        elif answer.startswith("s"):
            return "skip", "skipped by the technician"
        elif answer.startswith("f"):
            return "fail", "the technician reported that it did not work"
    return "fail", f"nothing seen within {timeout:g} s"
