"""The control socket: newline-delimited JSON over a Unix stream socket (mode 0660).

One request per line ``{"cmd": NAME, ...args}``, one answer per line: ``{"ok": true,
"result": ...}`` or ``{"ok": false, "error": MESSAGE}``. Garbage, unknown commands, oversized
lines and handler errors all get an error answer and are counted; nothing a client sends can
stop the server. Handlers run on the connection's thread and must only enqueue inputs or
read snapshots — the core loop alone changes state.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from safehouse.device.errors import ControlError

_LOG = logging.getLogger(__name__)
MAX_LINE = 64 * 1024
SUN_PATH_MAX = 107  # bytes, Linux sockaddr_un minus the NUL

Handler = Callable[[Mapping[str, Any]], Any]


class CommandRefused(Exception):
    """A handler's clean refusal: its message goes back to the client as the error."""


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    block_on_close = False
    control: ControlServer


class _Connection(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.request.settimeout(300)
        while True:
            try:
                line = self.rfile.readline(MAX_LINE + 1)
            except (OSError, TimeoutError):
                return
            if not line:
                return
            if len(line) > MAX_LINE and not line.endswith(b"\n"):
                self._send(self.server.control.reject(f"request longer than {MAX_LINE} bytes"))
                return
            if not line.strip():
                continue
            self._send(self.server.control.dispatch(line))

    def _send(self, answer: Mapping[str, Any]) -> None:
        try:
            self.wfile.write((json.dumps(answer, default=str) + "\n").encode("utf-8"))
            self.wfile.flush()
        except OSError:
            pass  # the client left; nothing to tell it


class ControlServer:
    """Serves ``handlers`` on ``path``; ``close()`` removes the socket file."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = dict(handlers)
        self.errors: Counter[str] = Counter()
        if len(os.fsencode(path)) > SUN_PATH_MAX:
            raise ControlError(f"control.socket path {path} is longer than {SUN_PATH_MAX} bytes; "
                               "choose a shorter path")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _remove_stale(path)
            self._server = _Server(str(path), _Connection)
            os.chmod(path, 0o660)
        except OSError as exc:
            raise ControlError(f"cannot listen on control socket {path}: {exc.strerror or exc}") from exc
        self._server.control = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="control-socket", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()

    def reject(self, error: str) -> dict[str, Any]:
        self.errors[error.split(":")[0]] += 1
        _LOG.warning("control socket: %s", error)
        return {"ok": False, "error": error}

    def dispatch(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return self.reject("bad request: not a JSON object on one line")
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return self.reject('bad request: expected {"cmd": NAME, ...}')
        name = request["cmd"]
        handler = self.handlers.get(name)
        if handler is None:
            return self.reject(f"unknown command: {name!r} (known: {', '.join(sorted(self.handlers))})")
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
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(1.0)
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> ControlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
    """Send one command and return its result; raise ControlError with a one-line reason."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            raise ControlError(f"the safehouse daemon is not running (no answer on {path})") from exc
        except PermissionError as exc:
            raise ControlError(f"permission denied on {path}: run as root or a member of the "
                               "socket's group") from exc
        sock.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode("utf-8"))
        with sock.makefile("rb") as f:
            line = f.readline(MAX_LINE * 16)
    except ControlError:
        raise
    except TimeoutError as exc:
        raise ControlError(f"the daemon on {path} did not answer {cmd!r} within {timeout:g} s") from exc
    except OSError as exc:
        raise ControlError(f"control socket {path}: {exc.strerror or exc}") from exc
    finally:
        sock.close()
    if not line:
        raise ControlError(f"the daemon on {path} closed the connection without answering")
    answer = json.loads(line)
    if not answer.get("ok"):
        raise ControlError(str(answer.get("error", "unknown error")))
    return answer.get("result")
