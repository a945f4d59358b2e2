"""Log lines about rejected input: truncated and rate-limited, so an attacker cannot fill the disk.

Whatever a broker, a keypad line or a control socket client sends can end up quoted in a log
line. Unbounded, a 10,000-character command name logs 20 KB per message and a flood of them
fills the SD card and buries the line a technician needs. ``clip`` bounds what is quoted;
``RateLimitedLog`` lets a few lines per key through each window and then counts the rest,
reporting the count with the next line that gets through. It never starts a timer: the
count of a quiet key is reported when that key logs again (or by ``flush``).

Pure: the clock is injected (monotonic seconds), so tests drive it without sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

CLIP = 200  # characters of untrusted text quoted in a log line
MAX_KEYS = 64  # distinct keys tracked; past it the oldest window is dropped


def clip(value: object, limit: int = CLIP) -> str:
    """``repr(value)`` cut to about ``limit`` characters, saying how long the original was.

    Strings and bytes are cut before ``repr`` so a megabyte is never copied just to be cut.
    """
    if isinstance(value, str | bytes | bytearray) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} {'chars' if isinstance(value, str) else 'bytes'})"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def clip_text(text: str, limit: int = CLIP) -> str:
    """A message (not a value) cut to ``limit`` characters; for reasons that quote input."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


@dataclass
class _Window:
    started: float
    logged: int = 0
    suppressed: int = 0


class RateLimitedLog:
    """At most ``burst`` lines per key every ``per`` seconds; the rest are counted, not written."""

    def __init__(self, logger: logging.Logger, *, burst: int = 5, per: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._logger, self._burst, self._per, self._clock = logger, burst, per, clock
        self._windows: dict[str, _Window] = {}
        self._lock = threading.Lock()  # the control socket logs from its worker threads
        self.suppressed_total = 0

    def log(self, level: int, key: str, msg: str, *args: object) -> bool:
        """Log ``msg % args`` (args clipped by the caller) unless ``key`` is over its budget.

        Returns True when the line was written. The first line after a suppressed stretch
        says how many lines of this key were left out.
        """
        with self._lock:
            return self._log(level, key, msg, args)

    def _log(self, level: int, key: str, msg: str, args: tuple[object, ...]) -> bool:
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self._per:
            dropped = window.suppressed if window is not None else 0
            if window is None and len(self._windows) >= MAX_KEYS:
                self._forget_oldest()
            window = self._windows[key] = _Window(now)
            if dropped:
                msg += " (%d similar lines suppressed before this one)"
                args = (*args, dropped)
        if window.logged >= self._burst:
            window.suppressed += 1
            self.suppressed_total += 1
            return False
        window.logged += 1
        self._logger.log(level, msg, *args)
        return True

    def warning(self, key: str, msg: str, *args: object) -> bool:
        return self.log(logging.WARNING, key, msg, *args)

    def flush(self) -> None:
        """Say how many lines each key suppressed in its last window (e.g. at shutdown)."""
        with self._lock:
            self._flush()

    def _flush(self) -> None:
        for key, window in self._windows.items():
            if window.suppressed:
                self._logger.warning("%d more %s lines were suppressed", window.suppressed, key)
                window.suppressed = 0

    def _forget_oldest(self) -> None:
        oldest = min(self._windows, key=lambda k: self._windows[k].started)
        if self._windows[oldest].suppressed:
            self._logger.warning("%d more %s lines were suppressed", self._windows[oldest].suppressed,
                                 oldest)
        del self._windows[oldest]
