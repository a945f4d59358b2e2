"""The control socket's I/O thread: every connection on one ``selectors`` loop, bounded.

Accepting, reading lines, writing answers and enforcing the limits all happen here, without
a thread per client: at most ``max_clients`` connections (plus one kept for root and the
daemon's user), lines of at most ``max_line`` bytes, and ``idle_timeout`` seconds to send a
complete line. Complete lines go to ``submit`` (the worker pool), one at a time per
connection; ``answer()`` (any thread) hands the reply back and wakes the loop through a
socket pair. ``select`` sleeps until the nearest idle deadline, or for ever when no client
is connected: nothing here wakes on a timer it does not need. Who is let in when the socket is
full is ``services/control_admission.py``; a connection's fields are ``services/control_conn.py``.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import queue
import selectors
import socket
import time
from collections.abc import Callable

from safehouse.device.core.ratelimit import RateLimitedLog
from safehouse.services.control_admission import RefusalBudget, free_kept_slot, peer_uid
from safehouse.services.control_conn import Conn, error_line

__all__ = ["ACCEPT_PAUSE", "Conn", "IoLoop"]

_LOG = logging.getLogger(__name__)
ACCEPT_PAUSE = 0.1  # out of file descriptors: stop accepting this long instead of spinning


class IoLoop:
    """The control socket's one I/O thread: accept, read lines, write answers, enforce limits."""

    def __init__(self, listener: socket.socket, *, max_clients: int, idle_timeout: float, max_line: int,
                 submit: Callable[[Conn, bytes], None], log: RateLimitedLog) -> None:
        self._listener, self._max, self._idle, self._max_line = listener, max_clients, idle_timeout, max_line
        self._submit, self._log = submit, log
        listener.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(listener, selectors.EVENT_READ, "accept")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._done: queue.SimpleQueue[tuple[Conn, bytes]] = queue.SimpleQueue()
        self._conns: set[Conn] = set()
        self._accept_paused_until: float | None = None
        self._stopping = False
        self._privileged = {0, os.geteuid()}
        self._refusals = RefusalBudget()
        self.accepted = self.refused = self.timed_out = self.too_long = 0

    # --- any thread ---------------------------------------------------------------------------

    def answer(self, conn: Conn, data: bytes) -> None:
        self._done.put((conn, data))
        self._wake()

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # BlockingIOError: a wake-up is already pending
            self._wake_w.send(b"x")

    # --- the I/O thread -----------------------------------------------------------------------

    def run(self) -> None:
        while not self._stopping:
            try:
                self._once()
            except Exception:  # a bug here must not leave the kiosk without its control socket
                _LOG.exception("control socket: I/O loop error (carrying on)")
                time.sleep(0.05)

    def _once(self) -> None:
        for key, mask in self._sel.select(self._timeout()):
            if key.data == "accept":
                self._accept()
            elif key.data == "wake":
                self._drain_wake()
            else:
                conn: Conn = key.data
                if mask & selectors.EVENT_WRITE:
                    self._flush(conn)
                if mask & selectors.EVENT_READ and not conn.closed:
                    self._read(conn)
        self._expire(time.monotonic())

    def _timeout(self) -> float | None:
        deadlines = [c.deadline for c in self._conns if not c.busy]
        if self._accept_paused_until is not None:
            deadlines.append(self._accept_paused_until)
        return max(0.0, min(deadlines) - time.monotonic()) if deadlines else None

    def _accept(self) -> None:
        while True:
            if len(self._conns) >= self._max and not self._refusals.take():
                # A flood: refusing costs CPU the core and the uplink need. Let the rest wait in
                # the (short) listen backlog, and take them in order once tokens are back.
                self._pause_accepting(0.02)  # ~10 tokens: refuse in small batches, not one per wake-up
                return
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._log.warning("accept", "control socket: cannot accept (%s): pausing %.1f s",
                                      exc.strerror, ACCEPT_PAUSE)
                    self._pause_accepting(ACCEPT_PAUSE)
                return
            sock.setblocking(False)
            reserved = False
            if len(self._conns) >= self._max:
                reserved = peer_uid(sock) in self._privileged and free_kept_slot(self._conns, self._close)
                if not reserved:
                    self._refuse(sock)
                    continue
            conn = Conn(sock, time.monotonic() + self._idle, reserved)
            self._conns.add(conn)
            self._sel.register(sock, selectors.EVENT_READ, conn)
            self.accepted += 1

    def _pause_accepting(self, seconds: float) -> None:
        if self._accept_paused_until is None:
            self._sel.unregister(self._listener)
        self._accept_paused_until = time.monotonic() + seconds

    def _refuse(self, sock: socket.socket) -> None:
        self.refused += 1
        self._log.warning("busy", "control socket: refused a connection: %d clients connected", self._max)
        with contextlib.suppress(OSError):
            sock.send(error_line(f"busy: {self._max} clients are connected; try again"))
        sock.close()

    def _read(self, conn: Conn) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            conn.eof = True  # e.g. `echo '{"cmd": "status"}' | socat - UNIX-CONNECT:...`
        conn.buf += data
        self._next(conn)
        self._update(conn)

    def _next(self, conn: Conn) -> None:
        """Hand the next complete line to a worker; enforce the line limit.

        Not while an answer is still unwritten: a client that sends requests and never reads
        its answers would otherwise have them pile up here without bound (found by testing:
        ~14 MB a minute of ``status`` answers). It waits in the kernel's buffers instead, and
        ``idle_timeout`` after its last answer it is closed."""
        while not conn.busy and not conn.closing and not conn.out:
            end = conn.buf.find(b"\n", 0, self._max_line + 1)
            if end < 0 and conn.eof and 0 < len(conn.buf) <= self._max_line:
                end = len(conn.buf)  # the last line, sent without its newline
            if end < 0:
                if len(conn.buf) > self._max_line:
                    self.too_long += 1
                    self._log.warning("too_long", "control socket: request longer than %d bytes",
                                      self._max_line)
                    self._send(conn, error_line(f"too_long: request longer than {self._max_line} bytes"),
                               close=True)
                break
            line = bytes(conn.buf[:end])
            del conn.buf[:end + 1]
            if line.strip():
                conn.busy = True
                self._submit(conn, line)
        if conn.busy and len(conn.buf) > 2 * self._max_line:
            self._send(conn, error_line("too_long: too much input before the answer"), close=True)
        if conn.eof and not conn.busy and not conn.closed and not conn.out:
            conn.closing = True
            self._flush(conn)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        while not self._done.empty():
            conn, data = self._done.get_nowait()
            conn.busy = False
            if conn.closed:
                continue
            conn.deadline = time.monotonic() + self._idle
            self._send(conn, data)
            if not conn.closed:
                self._next(conn)

    def _send(self, conn: Conn, data: bytes, *, close: bool = False) -> None:
        if conn.closed:
            return
        conn.out += data
        conn.closing = conn.closing or close
        self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        try:
            sent = conn.sock.send(conn.out) if conn.out else 0
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        del conn.out[:sent]
        if not conn.out and conn.closing:
            self._close(conn)
            return
        if sent and not conn.out and not conn.busy:
            self._next(conn)  # the answer is out: on to a line that waited for it
            if conn.closed:
                return
        self._update(conn)

    def _update(self, conn: Conn) -> None:
        """Watch for input unless the client is done sending or has an answer still to take;
        for output while some is left."""
        if conn.closed:
            return
        events = (0 if conn.eof or conn.closing or conn.out else selectors.EVENT_READ) | \
            (selectors.EVENT_WRITE if conn.out else 0)
        if events == conn.events:
            return
        if not events:
            self._sel.unregister(conn.sock)
        elif not conn.events:
            self._sel.register(conn.sock, events, conn)
        else:
            self._sel.modify(conn.sock, events, conn)
        conn.events = events

    def _expire(self, now: float) -> None:
        if self._accept_paused_until is not None and now >= self._accept_paused_until:
            self._accept_paused_until = None
            self._sel.register(self._listener, selectors.EVENT_READ, "accept")
        for conn in [c for c in self._conns if not c.busy and now >= c.deadline]:
            self.timed_out += 1
            self._log.warning("idle", "control socket: closed a client idle for %.0f s", self._idle)
            with contextlib.suppress(OSError):
                conn.sock.send(error_line(f"timeout: no complete request line within {self._idle:g} s"))
            self._close(conn)

    def _close(self, conn: Conn) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._conns.discard(conn)
        if conn.events:
            self._sel.unregister(conn.sock)
        conn.sock.close()
        if self._accept_paused_until is not None:  # a descriptor came back: accept again
            self._accept_paused_until = time.monotonic()

    def close(self) -> None:
        """After ``run`` returned (or never ran): close every socket."""
        for conn in list(self._conns):
            self._close(conn)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._sel.close()
