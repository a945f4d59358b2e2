"""The keypad's serial port: opened exclusively, held for the reader, woken and dropped.

The port is opened with ``exclusive=True`` (pyserial's flock: a second program that also locks
cannot share the keypad's bytes) and marked TIOCEXCL, so a plain open by any program not running
as root (``cat``, ``screen``) is refused with EBUSY too; the mark is taken off before closing,
as a pty keeps it after the last close.

Reads block with no timeout (``timeout=None``) while the keypad is idle, so an idle reader costs
no wake-ups: ``wake()`` ends such a read at once through pyserial's ``cancel_read()`` (on posix a
byte written to the port's abort pipe, which the read's ``select`` watches beside the tty; on
``loop://`` a None put in its queue). Only while something is due (a flood episode that ends
when the line is quiet, a handler to ask again) does the reader give its reads a timeout.

Apart from ``keypad.py``, which decodes and reports what this module's port delivers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import termios
import threading
from collections.abc import Callable
from typing import Any

_LOG = logging.getLogger(__name__)


def default_factory(*args: Any, **kwargs: Any) -> Any:
    import serial  # lazily: the daemon without a keypad never needs pyserial loaded

    return serial.serial_for_url(*args, **kwargs)


def _exclusive(port: Any, request: int) -> None:
    """TIOCEXCL / TIOCNXCL on a real tty (loop:// and test doubles have no fd)."""
    fd = getattr(port, "fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):  # an unplugged device's tty: nothing left to mark
            fcntl.ioctl(fd, request)


def set_timeout(port: Any, seconds: float | None) -> None:
    """Give the port's reads ``seconds`` (None: block until data or ``wake()``), if not already.

    Only on a change: on posix pyserial re-applies the port settings on every assignment.
    """
    if port.timeout != seconds:
        port.timeout = seconds


class KeypadPort:
    """The one port the reader holds, if any, and how long to wait before opening it again.

    ``open()`` and ``drop()`` run on the reader thread; ``wake()`` on any thread. The slot's
    lock makes ``adopt()`` (reader) and a stop (owner) exclusive: either the reader sees the
    stop and closes the port it just opened, or the owner's ``wake()`` finds it and ends its
    read.
    """

    def __init__(self, name: str, *, baud: int, reopen: tuple[float, float],
                 factory: Callable[..., Any] | None = None) -> None:
        if not 0 < reopen[0] <= reopen[1]:
            raise ValueError(f"keypad on {name}: need 0 < reopen_min <= reopen_max, "
                             f"got reopen_min={reopen[0]!r} reopen_max={reopen[1]!r}")
        self.name = name
        self.reopen = reopen  # (reopen_min, reopen_max) seconds
        self._baud = baud
        self._delay = reopen[0]
        self._factory = factory or default_factory
        self._lock = threading.Lock()
        self._port: Any = None

    @property
    def current(self) -> Any:
        """The open port, or None."""
        with self._lock:
            return self._port

    def serve(self, stopping: threading.Event, *, up: Callable[[], object],
              read: Callable[[Any], object], down: Callable[[BaseException, bool], object],
              wait: Callable[[float], object]) -> None:
        """The reader's life until ``stopping``: open, ``up()``, ``read(port)`` until it raises,
        ``down(exc, opening)``, ``wait(seconds)`` before the next open; the port closed at the end.

        A failed open of an absent node is retried every ``reopen_min`` (it appears when plugged
        in); a port that is there but will not open, or a lost one, with backoff.
        """
        while not stopping.is_set():
            try:
                port = self.open()
            except Exception as exc:
                down(exc, True)
                wait(self.retry_in(failed_open=True))
                continue
            if not self.adopt(port, stopping):
                return
            up()
            try:
                read(port)
            except Exception as exc:
                if stopping.is_set():
                    break
                down(exc, False)
                self.drop()
                wait(self.retry_in(failed_open=False))
        self.drop()

    def open(self) -> Any:
        """Open the port exclusively, blocking reads; raises whatever pyserial raises."""
        port = self._factory(self.name, baudrate=self._baud, timeout=None, exclusive=True)
        _exclusive(port, termios.TIOCEXCL)
        return port

    def adopt(self, port: Any, stopping: threading.Event) -> bool:
        """Hold ``port`` for the reader; False (and the port closed) if a stop came first."""
        with self._lock:
            if stopping.is_set():
                self._close(port)
                return False
            self._port = port
        self._delay = self.reopen[0]
        return True

    def wake(self) -> None:
        """End a read blocked on the held port now (a no-op while none is held)."""
        with self._lock:
            if self._port is not None:
                with contextlib.suppress(Exception):  # a port already failing: its read ends anyway
                    self._port.cancel_read()

    def drop(self) -> None:
        """Close the held port, if any; closing errors are logged, never raised."""
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                self._close(port)
            except Exception:
                _LOG.debug("keypad on %s: closing the port failed", self.name, exc_info=True)

    def absent(self) -> bool:
        """A device path (not a pyserial URL such as loop://) whose node does not exist."""
        return "://" not in self.name and not os.path.exists(self.name)

    def retry_in(self, *, failed_open: bool) -> float:
        """Seconds until the next open: after a failed open of a node that is absent,
        ``reopen_min`` (USB hotplug: it appears the moment the keypad is plugged in); else
        (a port there that will not open, or a lost one) a backoff doubling up to ``reopen_max``."""
        if failed_open and self.absent():
            return self.reopen[0]
        delay = self._delay
        self._delay = min(delay * 2, self.reopen[1])
        return delay

    @staticmethod
    def _close(port: Any) -> None:
        _exclusive(port, termios.TIOCNXCL)
        port.close()
