"""The MQTT test rig: a real mosquitto per test, a TCP black hole, and an independent subscriber.

Why real parts: the precinct depends on what actually crosses the broker (retain flags, QoS 1
acks, ACL drops, TLS refusals), and a mock broker would only echo our own assumptions. A
mosquitto on a free loopback port starts in ~20 ms, so each test gets its own and can stop,
kill or restart it. Everything here talks to 127.0.0.1 only.

Not a test module: tests import ``Broker``, ``Blackhole``, ``Subscriber`` (its home is
``tests/mqtt_subscriber.py``) and the fixtures in ``tests/mqtt_fixtures.py``.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self, cast

from safehouse.services.acl import fleet_of, render_acl
from tests.mqtt_subscriber import HOST, ConnectFailed, Message, PublishRefused, Subscriber
from tests.pki import Pki

__all__ = ["HOST", "Blackhole", "Broker", "BrokerError", "ConnectFailed", "Message", "PublishRefused",
           "Subscriber", "free_port", "write_acl"]

REPO = Path(__file__).resolve().parent.parent
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: no dlopen in a child forked from threads
DEFAULT_LOG_TYPES = ("all",)  # debug included: "Denied PUBLISH ..." is only logged at debug level


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def write_acl(folder: Path, kiosks: Iterable[tuple[str, str, str]], console_user: str) -> Path:
    """Render the per-kiosk ACL for ``kiosks`` into ``folder/mosquitto.acl``, as ``safehouse acl render``
    would, with ``console_user`` as the console of every precinct the kiosks are in."""
    kiosk_list = list(kiosks)
    fleet = fleet_of(kiosk_list, {precinct: [console_user] for _id, precinct, _a in kiosk_list})
    path = folder / "mosquitto.acl"
    path.write_text(render_acl(fleet, source="tests/mqtt_rig.py"), encoding="utf-8")
    return path


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the thread that started it dies.

    A test run killed by a CI timeout runs no teardown; without this its brokers would be
    orphaned, holding ports. (Start brokers from the main thread or a long-lived one.)
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class BrokerError(RuntimeError):
    """mosquitto did not start or stop as asked; the message carries its log."""


class Broker:
    """One mosquitto process on 127.0.0.1, configured and logged inside ``folder``.

    Modes: plain (``pki=None``: anonymous clients allowed), mutual TLS (``pki`` given: the
    client must show a certificate of ``pki.ca`` and its CN becomes the username), and either
    of them plus ``acl_file``. ``extra`` lines are appended to the config verbatim.
    The port is picked once and kept across ``restart()``, as a kiosk's configured URL is.
    """

    def __init__(self, folder: Path, *, pki: Pki | None = None, acl_file: Path | None = None,
                 extra: Sequence[str] = (), port: int | None = None,
                 log_types: Sequence[str] = DEFAULT_LOG_TYPES, mosquitto: str = "mosquitto",
                 persistence: bool = False) -> None:
        """``persistence``: keep sessions and queued messages across a ``stop()``/``start()``, as a
        precinct's broker must (a ``kill()`` still loses what was not saved yet)."""
        self.folder, self.pki, self.acl_file = folder, pki, acl_file
        self.extra, self.log_types = list(extra), list(log_types)
        self._fixed_port = port is not None
        self._port = port if port is not None else free_port()
        self._mosquitto = mosquitto
        self.persistence = persistence
        self.config_path = folder / "mosquitto.conf"
        self.log_path = folder / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @property
    def port(self) -> int:
        return self._port

    @property
    def tls(self) -> bool:
        return self.pki is not None

    @property
    def url(self) -> str:
        """The broker URL as a kiosk config spells it: ``mqtt://127.0.0.1:PORT`` or ``mqtts://...``."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{HOST}:{self._port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def config_text(self) -> str:
        lines = ["# written by tests/mqtt_rig.py", "per_listener_settings false",
                 "user root",  # as root, mosquitto would drop to user mosquitto before reading its key
                 f"persistence {'true' if self.persistence else 'false'}",
                 "log_dest stderr", "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                 "set_tcp_nodelay true"]  # as a precinct broker should: no 40 ms Nagle stalls
        lines += [f"log_type {kind}" for kind in self.log_types]
        if self.persistence:
            lines += [f"persistence_location {self.folder}/"]
        lines += [f"listener {self._port} {HOST}"]
        if self.pki is None:
            lines += ["allow_anonymous true"]
        else:
            lines += ["allow_anonymous false", f"cafile {self.pki.ca.cert}",
                      f"certfile {self.pki.server.cert}", f"keyfile {self.pki.server.key}",
                      "require_certificate true", "use_identity_as_username true"]
        if self.acl_file is not None:
            lines += [f"acl_file {self.acl_file}"]
        return "\n".join([*lines, *self.extra]) + "\n"

    def log_text(self) -> str:
        """Everything mosquitto logged so far, across restarts."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """Block until ``text`` appears in the log (e.g. a client's disconnect); return the log."""
        deadline = time.monotonic() + timeout
        while True:
            log = self.log_text()
            if text in log:
                return log
            if time.monotonic() > deadline:
                raise TimeoutError(f"{text!r} not in the mosquitto log within {timeout} s:\n{log}")
            time.sleep(0.02)

    def start(self, timeout: float = 10.0) -> Self:
        """Start mosquitto and return once its port accepts TCP; fail with its log if it exits."""
        if self.running:
            return self
        exe = shutil.which(self._mosquitto)
        if exe is None:
            raise BrokerError(f"{self._mosquitto} is not installed (Debian: apt-get install mosquitto)")
        self.folder.mkdir(parents=True, exist_ok=True)
        for attempt in range(5):
            self.config_path.write_text(self.config_text(), encoding="utf-8")
            log_start = len(self.log_text())
            with self.log_path.open("ab") as log:
                self._proc = subprocess.Popen([exe, "-c", str(self.config_path)], stdin=subprocess.DEVNULL,
                                              stdout=log, stderr=subprocess.STDOUT,
                                              preexec_fn=_die_with_parent)
            error = self._wait_listening(timeout)
            if error is None:
                self._started_once = True
                return self
            # free_port() can race with another process: pick a new port, but only before the
            # first successful start (a restart must keep the port the client was configured with).
            if ("Address already in use" in self.log_text()[log_start:] and not self._fixed_port
                    and not self._started_once and attempt < 4):
                self._port = free_port()
                continue
            self.kill()
            raise BrokerError(f"mosquitto did not start on {HOST}:{self._port}: {error}\n"
                              f"config {self.config_path}:\n{self.config_text()}\nlog:\n{self.log_text()}")
        raise AssertionError("unreachable")

    def _wait_listening(self, timeout: float) -> str | None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code = self._proc.poll()
            if code is not None:
                return f"it exited with code {code}"
            try:
                with socket.create_connection((HOST, self._port), timeout=0.2):
                    return None
            except OSError:
                time.sleep(0.01)
        return f"port not accepting TCP within {timeout} s"

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM by PID and wait: a clean shutdown (no will messages for clean disconnects)."""
        self._end(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL by PID: the broker vanishes without closing anything, like a power cut."""
        self._end(signal.SIGKILL, 5.0)

    def _end(self, sig: signal.Signals, timeout: float) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5.0)

    def restart(self, *, kill: bool = False, down_for: float = 0.0) -> Self:
        """Stop (or kill) and start again on the same port, optionally staying down ``down_for`` s."""
        self.kill() if kill else self.stop()
        if down_for:
            time.sleep(down_for)
        return self.start()

    def subscriber(self, topics: Sequence[str] = (), *, name: str | None = None,
                   **kwargs: Any) -> Subscriber:
        """A connected ``Subscriber`` for this broker; with TLS, ``name`` picks the client certificate."""
        if self.pki is not None:
            if name is None:
                raise ValueError("a TLS broker needs name= (the client certificate to connect with)")
            pair = self.pki.client(name)
            kwargs = {"ca": self.pki.ca.cert, "cert": pair.cert, "key": pair.key, **kwargs}
        return Subscriber(self._port, topics, client_id=kwargs.pop("client_id", name), **kwargs)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Blackhole:
    """A TCP listener on 127.0.0.1 that accepts connections, reads and discards, never answers.

    It stands for a broker that accepts TCP but hangs (a wedged process, a middlebox): the
    client's CONNECT goes out and no CONNACK ever comes back.
    """

    def __init__(self, port: int = 0) -> None:
        """``port`` 0: the kernel picks one; a broker's port: it stands in for that broker."""
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._accepted = 0
        self._received = 0
        self._port = port

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self._port}"

    @property
    def accepted(self) -> int:
        """How many connections were accepted so far."""
        with self._lock:
            return self._accepted

    @property
    def received(self) -> int:
        """How many bytes clients sent (their CONNECT, retries); none is ever answered."""
        with self._lock:
            return self._received

    def start(self) -> Self:
        if self._listener is not None:
            return self
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, self._port))  # port 0 first time: the kernel picks, no race
        listener.listen(16)
        listener.setblocking(False)
        self._port = int(listener.getsockname()[1])
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, args=(listener,), name="blackhole", daemon=True)
        self._thread.start()
        return self

    def _serve(self, listener: socket.socket) -> None:
        conns: list[socket.socket] = []
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            while not self._stopping.is_set():
                for key, _ in sel.select(timeout=0.05):
                    sock = cast(socket.socket, key.fileobj)
                    if sock is listener:
                        try:
                            conn, _addr = listener.accept()
                        except OSError:
                            continue
                        conn.setblocking(False)
                        conns.append(conn)
                        sel.register(conn, selectors.EVENT_READ)
                        with self._lock:
                            self._accepted += 1
                        continue
                    try:
                        data = sock.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        with self._lock:
                            self._received += len(data)
                    else:  # the client gave up: forget it
                        sel.unregister(sock)
                        conns.remove(sock)
                        sock.close()
        for conn in conns:
            conn.close()

    def stop(self) -> None:
        """Close the listener and every accepted connection (clients then see a reset/EOF)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
