"""The control socket: newline-delimited JSON over a Unix stream socket (mode 0660).

One request per line ``{"cmd": NAME, ...args}``, one answer per line: ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error": MESSAGE}``. Garbage, nesting, duplicate keys,
unknown commands, oversized lines and handler errors all get an error answer and are counted;
nothing a client sends can stop the server. Every string of a request (keys included) must be
valid, printable Unicode: a client other than our CLI can send ``"\\udcff"`` as JSON, and a
lone surrogate in an ack's ``by`` once made an event that could never be written.

Bounded, because a thread per connection let 1,100 connections take 1,024 fds and threads,
100 % CPU, and keep the kiosk off its broker: one I/O thread (``selectors``) owns every
socket, and a fixed pool of ``WORKERS`` threads reads the requests. A handler that may wait
(on the core, a camera, the self-test) is on a lane with workers of its own
(``services/control_lanes.py``): the pool hands it over, or answers ``busy`` when that lane is
full, so a hung camera never holds the worker `status` or `press` needs. At most
``max_clients`` connections are open; one more is kept for root and the daemon's own user (a
technician's ``sudo safehouse status`` during a flood); any other connection gets one
``busy`` line and is closed at once. A connection that has not sent a complete line
``idle_timeout`` seconds after connecting or after its last answer (half a line, or nothing)
is told so and closed. No thread wakes on a timer: the I/O thread sleeps
until the next idle deadline (forever with no client), the workers until there is work.

Handlers run on a worker and must only enqueue inputs or read snapshots — the core loop
alone changes state.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import queue
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safehouse.device.core import boundedjson, text
from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import ControlError
from safehouse.device.core.files import make_folders
from safehouse.device.core.ratelimit import RateLimitedLog, clip
from safehouse.device.core.settings import as_path, in_range, setting
from safehouse.device.core.threads import Worker
from safehouse.services.control_io import Conn, IoLoop
from safehouse.services.control_lanes import Handoff, LaneWorkers, OnLane

_LOG = logging.getLogger(__name__)
MAX_LINE = 16 * 1024  # requests are a command name and a few short arguments
MAX_DEPTH = 4
MAX_CLIENTS = 16
IDLE_TIMEOUT = 10.0
WORKERS = 2  # they only read requests and hand them to their lanes (and run handlers on none)
BUSY_RETRY = 5.0  # how long `request()` keeps retrying a busy daemon (within its timeout)
SUN_PATH_MAX = 107  # bytes, Linux sockaddr_un minus the NUL

Handler = Callable[[Mapping[str, Any]], Any]


class CommandRefused(Exception):
    """A handler's clean refusal: its message goes back to the client as the error."""


class ControlServer(Closing):
    """Serves ``handlers`` on ``path``; ``close()`` removes the socket file."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler], *, max_clients: int = MAX_CLIENTS,
                 idle_timeout: float = IDLE_TIMEOUT, workers: int = WORKERS) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.errors: Counter[str] = Counter()
        self._errors_lock = threading.Lock()
        self._log = RateLimitedLog(_LOG)
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise ControlError(f"control.socket path {path} is longer than {SUN_PATH_MAX} bytes; "
                               "choose a shorter path")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            make_folders(path.parent)  # explicit modes: the umask may be 000
            _remove_stale(path)
            listener.bind(str(path))
            os.chmod(path, 0o660)
            listener.listen(16)  # a flood waits here, briefly, while refusals are rate-limited
        except OSError as exc:
            listener.close()
            raise ControlError(f"cannot listen on control socket {path}: {exc.strerror or exc}") from exc
        self._jobs: queue.SimpleQueue[tuple[Conn, bytes] | None] = queue.SimpleQueue()
        self._io = IoLoop(listener, max_clients=max_clients, idle_timeout=idle_timeout,
                          max_line=MAX_LINE, submit=lambda c, line: self._jobs.put((c, line)),
                          log=self._log)
        self._lanes: dict[str, LaneWorkers] = {}
        for handler in self.handlers.values():
            if isinstance(handler, OnLane) and handler.lane.name not in self._lanes:
                self._lanes[handler.lane.name] = LaneWorkers(handler.lane, self._answer)
        self._threads = [Worker(self._io.run, name="control-io", wake=self._io.stop)]
        self._threads += [Worker(self._work, name=f"control-{i}", wake=lambda: self._jobs.put(None))
                          for i in range(max(1, workers))]
        self._threads += [w for lane in self._lanes.values() for w in lane.workers]
        self._closed = False

    @property
    def io(self) -> IoLoop:
        """Counters of the I/O side (accepted, refused, timed out), for tests and benches."""
        return self._io

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._answer(*job)

    def _answer(self, conn: Conn, line: bytes) -> None:
        """Answer one request, on the pool or on a lane's worker; the pool hands a request whose
        handler is on a lane to that lane (whose worker comes back here), or says busy."""
        try:
            answer = self.dispatch(line)
            handoff = answer.get("result")
            if isinstance(handoff, Handoff):
                lane = self._lanes.get(handoff.lane.name)
                if lane is not None and lane.offer(conn, line):
                    return  # one of that lane's workers answers it
                answer = self.reject(f"busy: {handoff.lane.busy}")
            data = (json.dumps(answer, default=str) + "\n").encode("utf-8")
        except Exception as exc:  # dispatch answers everything; this is a last line of defence
            _LOG.exception("control socket: answering failed")
            data = (json.dumps({"ok": False, "error": f"internal error: {exc}"}) + "\n").encode()
        self._io.answer(conn, data)

    def reject(self, error: str) -> dict[str, Any]:
        with self._errors_lock:
            self.errors[error.split(":")[0]] += 1
        self._log.warning(error.split(":")[0], "control socket: %s", error[:300])
        return {"ok": False, "error": error}

    def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = boundedjson.loads(line, max_bytes=MAX_LINE, max_depth=MAX_DEPTH, what="request")
        except boundedjson.JsonRefused as exc:
            if exc.reason == "not_json":
                return self.reject("bad request: not a JSON object on one line")
            return self.reject(f"bad request: {exc}")
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return self.reject('bad request: expected {"cmd": NAME, ...}')
        try:
            text.check_json(request, "request")
        except text.TextRefused as exc:
            return self.reject(f"bad request: {exc}")
        name = request["cmd"]
        handler = self.handlers.get(name)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return self.reject(f"unknown command: {clip(name, 64)} (known: {known})")
        try:
            return {"ok": True, "result": handler(request)}
        except CommandRefused as exc:
            return self.reject(f"{name}: {exc}")
        except Exception as exc:
            _LOG.exception("control command %r failed", name)
            return self.reject(f"{name}: internal error: {exc}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._threads:
            t.request_stop()  # the I/O loop first, then one None per handler thread
        for t in self._threads:
            t.stop()  # waits JOIN_SECONDS; a handler still running is reported stuck
        self._io.close()
        self._log.flush()
        self.path.unlink(missing_ok=True)


def _remove_stale(path: Path) -> None:
    """A socket file left by a killed daemon is removed; a live daemon is never displaced."""
    if not path.exists() and not path.is_symlink():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ControlError(f"another safehouse daemon is already listening on {path}")


def request(path: Path, cmd: str, *, timeout: float = 10.0, **args: Any) -> Any:
    """Send one command and return its result; raise ControlError with a one-line reason.

    A daemon answering ``busy`` (all its client slots taken) is asked again for a few seconds.
    """
    deadline = time.monotonic() + min(timeout, BUSY_RETRY)
    while True:
        answer = _request_once(path, cmd, timeout, args)
        error = str(answer.get("error", "unknown error"))
        if answer.get("ok"):
            return answer.get("result")
        if not error.startswith("busy:") or time.monotonic() >= deadline:
            raise ControlError(error)
        time.sleep(random.uniform(0.05, 0.2))


def _connect_timeout(sock: socket.socket, timeout: float) -> None:
    """A blocking connect waits its turn in a full listen backlog (a flood) for up to ``timeout``;
    Python's settimeout() would make it fail at once with EAGAIN (then retried as busy)."""
    whole, frac = divmod(max(timeout, 0.001), 1.0)
    for layout in ("ll", "qq"):  # struct timeval; 64-bit fields on 32-bit ARM built for time64
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                            struct.pack(layout, int(whole), int(frac * 1e6)))
            return
        except (OSError, struct.error):
            continue
    sock.settimeout(timeout)


def _request_once(path: Path, cmd: str, timeout: float, args: Mapping[str, Any]) -> dict[str, Any]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _connect_timeout(sock, timeout)
    try:
        try:
            sock.connect(str(path))
        except BlockingIOError:
            return {"ok": False, "error": "busy: the daemon's listen backlog is full"}
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(f"the safehouse daemon is not running (no answer on {path})") from exc
        except PermissionError as exc:
            raise ControlError(f"permission denied on {path}: run as root or a member of the "
                               "socket's group") from exc
        sock.settimeout(timeout)
        # a busy daemon closes at once: its one line is still there to read
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode("utf-8"))
        with sock.makefile("rb") as f:
            line = f.readline(MAX_LINE * 16)
    except ControlError:
        raise
    except TimeoutError as exc:
        raise ControlError(f"the daemon on {path} did not answer {cmd!r} within {timeout:g} s") from exc
    except OSError as exc:
        if exc.errno == errno.ECONNRESET:
            return {"ok": False, "error": "busy: the daemon closed the connection"}
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    if not line:
        raise ControlError(f"the daemon on {path} closed the connection without answering")
    answer = json.loads(line)
    return dict(answer) if isinstance(answer, dict) else {"ok": False, "error": "malformed answer"}


@dataclass(frozen=True)
class ControlSettings:
    """[control]: the Unix socket the CLI talks to the daemon through, and its limits."""

    socket: Path = setting("/run/safehouse/control.sock", "Unix control socket used by the CLI",
                           convert=as_path)
    max_clients: int = setting(16, "control socket connections at once (one more is kept for root); "
                               "more are refused with a busy line", in_range(1, 256))
    idle_timeout: float = setting(10.0, "seconds a control client has to send a complete request "
                                  "line (after connecting or after its last answer) before it is closed",
                                  in_range(0.5, 3600.0))
