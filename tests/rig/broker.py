"""The broker rig: a real mosquitto per test on a free 127.0.0.1 port, and its ACL.

Why real parts: the precinct depends on what actually crosses the broker (retain flags, QoS 1
acks, ACL drops, TLS refusals), and a mock broker would only echo our own assumptions. A
mosquitto on a free loopback port starts in ~20 ms, so each test gets its own and can stop,
kill or restart it. The fixtures that hand one to a test (``broker``, ``tls_broker``,
``acl_broker``) live in ``tests/conftest.py``; the client side is ``tests/rig/subscriber.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Self

from safehouse.services.acl import Kiosk, fleet_of, render_acl
from tests.rig.availability import require_tool
from tests.rig.net import HOST, die_with_parent, free_port
from tests.rig.pki import Pki
from tests.rig.subscriber import Subscriber

__all__ = ["ACL_KIOSKS", "CONSOLE_USER", "PKI_CLIENTS", "Broker", "BrokerError", "mosquitto_path",
           "write_acl"]

DEFAULT_LOG_TYPES = ("all",)  # debug included: "Denied PUBLISH ..." is only logged at debug level
CONSOLE_USER = "precinct-console"
# The ACL broker's world: two kiosks of precinct p1 in alliance a1, and the precinct console.
ACL_KIOSKS = (Kiosk("SH-A", "p1", "a1"), Kiosk("SH-B", "p1", "a1"))
PKI_CLIENTS = ("SH-A", "SH-B", CONSOLE_USER)


def mosquitto_path() -> str:
    """mosquitto lives in /usr/sbin, which a non-root user's PATH lacks on Debian: look there too."""
    sbin = f"{os.defpath}:/usr/sbin:/usr/local/sbin"
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path=sbin)
    return found or require_tool("mosquitto")  # absent: fails in CI, skips elsewhere


def write_acl(folder: Path, kiosks: Iterable[tuple[str, str, str]], console_user: str) -> Path:
    """Render the per-kiosk ACL for ``kiosks`` into ``folder/mosquitto.acl``, as ``safehouse acl render``
    would, with ``console_user`` as the console of every precinct the kiosks are in."""
    kiosk_list = list(kiosks)
    fleet = fleet_of(kiosk_list, {precinct: [console_user] for _id, precinct, _a in kiosk_list})
    path = folder / "mosquitto.acl"
    path.write_text(render_acl(fleet, source="tests/rig/broker.py"), encoding="utf-8")
    return path


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
        lines = ["# written by tests/rig/broker.py", "per_listener_settings false",
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
                                              preexec_fn=die_with_parent)
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
