"""The MQTT test rig: a real mosquitto per test, a TCP black hole, and an independent subscriber.

Why real parts: the precinct depends on what actually crosses the broker (retain flags, QoS 1
acks, ACL drops, TLS refusals), and a mock broker would only echo our own assumptions. A
mosquitto on a free loopback port starts in ~20 ms, so each test gets its own and can stop,
kill or restart it. Everything here talks to 127.0.0.1 only.

Not a test module: tests import ``Broker``, ``Blackhole``, ``Subscriber`` and the fixtures
in ``tests/mqtt_fixtures.py``.
"""

from __future__ import annotations

import ctypes
import functools
import json as jsonlib
import os
import selectors
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from safehouse.services.acl import fleet_of, render_acl
from tests.pki import Pki

HOST = "127.0.0.1"  # the only address the rig ever talks to
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


@dataclass(frozen=True)
class Message:
    """One message as the subscriber received it; ``received`` is ``time.monotonic()`` on arrival."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    received: float
    properties: Properties | None

    def json(self) -> Any:
        return jsonlib.loads(self.payload)

    @property
    def response_topic(self) -> str | None:
        return cast(str | None, getattr(self.properties, "ResponseTopic", None))

    @property
    def correlation_data(self) -> bytes | None:
        return cast(bytes | None, getattr(self.properties, "CorrelationData", None))


class ConnectFailed(ConnectionError):
    """The client got no CONNACK: refused TLS, refused CONNACK, lost connection or silence.

    ``reason`` says what the client saw; ``reason_code`` is the CONNACK or disconnect code if any.
    """

    def __init__(self, reason: str, reason_code: ReasonCode | None = None) -> None:
        super().__init__(reason)
        self.reason, self.reason_code = reason, reason_code


class PublishRefused(ConnectionError):
    """The broker answered a QoS 1 publish with a failure reason code (MQTT 5), e.g. 135 Not authorized."""

    def __init__(self, topic: str, reason_code: ReasonCode) -> None:
        super().__init__(f"publish to {topic!r} refused by the broker: {reason_code} ({reason_code.value})")
        self.topic, self.reason_code = topic, reason_code


MessagePredicate = Callable[[Message], bool]
# paho's matcher costs ~2 us; tests re-check the same few topics thousands of times
_matches: Callable[[str, str], bool] = functools.lru_cache(maxsize=8192)(mqtt.topic_matches_sub)


class Subscriber:
    """An independent paho-mqtt 2.x client standing for the precinct side (or a second kiosk).

    Connects on construction to 127.0.0.1:``port`` (TLS when ``ca`` is given, with the client
    certificate ``cert``/``key``), subscribes to ``topics`` at QoS 1 and returns only after the
    SUBACK, so nothing published afterwards can be missed. It resubscribes after every
    reconnect (paho reconnects on its own; the rig's broker keeps no sessions). Every message
    is recorded, in arrival order, under a lock; paho's thread does nothing else.
    Raises ``ConnectFailed`` if the first connection does not reach CONNACK within ``timeout``.
    """

    def __init__(self, port: int, topics: Sequence[str] = (), *, ca: Path | None = None,
                 cert: Path | None = None, key: Path | None = None, client_id: str | None = None,
                 protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5, username: str | None = None,
                 password: str | None = None, keepalive: int = 60, timeout: float = 5.0,
                 session_expiry: int | None = None) -> None:
        """``session_expiry`` (MQTT 5): keep a persistent session that long, as a precinct
        console does, so QoS 1 messages published while it is away are handed over later."""
        self.port, self.topics, self.timeout = port, list(topics), timeout
        self._session_expiry = session_expiry
        self.client_id = client_id or f"rig-{uuid.uuid4().hex[:8]}"
        self._v5 = protocol == MQTTProtocolVersion.MQTTv5
        self._cond = threading.Condition()
        self._messages: list[Message] = []
        self._acks: dict[int, ReasonCode] = {}
        self._subacks: dict[int, list[ReasonCode]] = {}
        self._resubscribe_mid: int | None = None
        self._ready = 0
        self._failure: ConnectFailed | None = None
        self.disconnects: list[ReasonCode] = []
        self.granted: list[ReasonCode] = []
        self._closed = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=protocol)
        if ca is not None:
            context = ssl.create_default_context(cafile=str(ca))
            if cert is not None:
                context.load_cert_chain(str(cert), str(key) if key is not None else None)
            client.tls_set_context(context)
        if username is not None:
            client.username_pw_set(username, password)
        # paho accepts float delays at run time (its hint says int): reconnect fast after a restart.
        client.reconnect_delay_set(min_delay=cast(int, 0.05), max_delay=cast(int, 0.5))
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.client = client
        self._connect(keepalive)

    # --- connection -----------------------------------------------------------------------

    def _connect(self, keepalive: int) -> None:
        try:
            if self._session_expiry is None:
                rc = self.client.connect(HOST, self.port, keepalive)
            else:  # paho keeps clean_start and the properties for its own reconnects
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self._session_expiry
                rc = self.client.connect(HOST, self.port, keepalive, clean_start=False, properties=props)
        except (OSError, ssl.SSLError) as exc:  # refused TCP, TLS handshake refused by either side
            raise ConnectFailed(f"connect() to {HOST}:{self.port} raised {exc!r}") from exc
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:  # e.g. 7: the broker's TLS alert came while sending CONNECT
            with self._cond:
                self._failure = self._failure or ConnectFailed(f"connect() returned {mqtt.error_string(rc)}")
        self.client.loop_start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._ready > 0 or self._failure is not None, self.timeout)
            failure = self._failure
        if ok and failure is None:
            return
        self._stop_loop()
        raise failure or ConnectFailed(f"no CONNACK/SUBACK from {HOST}:{self.port} within {self.timeout} s")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
                    reason_code: ReasonCode, properties: Properties | None) -> None:
        sock = client.socket()
        # paho leaves Nagle on; a measuring client must not add 40 ms stalls (SSLSocket is a socket)
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if reason_code.is_failure:
            with self._cond:
                if self._ready == 0:
                    self._failure = ConnectFailed(f"CONNACK refused: {reason_code}", reason_code)
                self._cond.notify_all()
            return
        if not self.topics:
            with self._cond:
                self._ready += 1
                self._cond.notify_all()
            return
        _rc, mid = client.subscribe(self._subscriptions(self.topics))
        with self._cond:  # the SUBACK is read by this same thread, after we return
            self._resubscribe_mid = mid

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list[ReasonCode],
                      properties: Properties | None) -> None:
        with self._cond:
            self._subacks[mid] = list(reason_codes)
            if mid == self._resubscribe_mid:
                self.granted = list(reason_codes)
                self._ready += 1
            self._cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
                       reason_code: ReasonCode, properties: Properties | None) -> None:
        with self._cond:
            self.disconnects.append(reason_code)
            if self._ready == 0 and self._failure is None:
                self._failure = ConnectFailed(f"connection lost before CONNACK: {reason_code}", reason_code)
            self._cond.notify_all()

    def _subscriptions(self, topics: Sequence[str]) -> list[tuple[str, Any]]:
        if self._v5:
            return [(topic, SubscribeOptions(qos=1)) for topic in topics]
        return [(topic, 1) for topic in topics]

    @property
    def ready_count(self) -> int:
        """How many times the client has connected and (re)subscribed: 2 after one reconnect."""
        with self._cond:
            return self._ready

    def wait_ready(self, count: int, timeout: float | None = None) -> None:
        """Block until the client has connected and subscribed ``count`` times in all."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready >= count, timeout or self.timeout):
                raise TimeoutError(f"{self.client_id}: connected+subscribed {self._ready} times, "
                                   f"waited for {count}; disconnects: {self.disconnects}")

    def subscribe(self, topics: Sequence[str]) -> list[ReasonCode]:
        """Add subscriptions (kept across reconnects); return the SUBACK reason codes."""
        self.topics += [t for t in topics if t not in self.topics]
        rc, mid = self.client.subscribe(self._subscriptions(topics))
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise ConnectionError(f"{self.client_id}: subscribe {list(topics)} failed: "
                                  f"{mqtt.error_string(rc)}")
        with self._cond:
            if not self._cond.wait_for(lambda: mid in self._subacks, self.timeout):
                raise TimeoutError(f"{self.client_id}: no SUBACK for {list(topics)} within {self.timeout} s")
            return self._subacks[mid]

    # --- messages -------------------------------------------------------------------------

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.monotonic(),
                          getattr(msg, "properties", None))
        with self._cond:
            self._messages.append(message)
            self._cond.notify_all()

    def messages(self, topic_filter: str | None = None) -> list[Message]:
        """Messages received so far, in arrival order, optionally only those matching an MQTT filter."""
        with self._cond:
            found = list(self._messages)
        return [m for m in found if topic_filter is None or _matches(topic_filter, m.topic)]

    def json(self, topic_filter: str | None = None) -> list[Any]:
        """Payloads of ``messages(topic_filter)`` parsed as JSON."""
        return [m.json() for m in self.messages(topic_filter)]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, predicate: MessagePredicate | str | None = None, timeout: float | None = None, *,
                 count: int = 1) -> list[Message]:
        """Block until ``count`` received messages match; return all that match.

        ``predicate`` is a function of a ``Message``, an MQTT topic filter, or None (any message).
        Raises ``TimeoutError`` listing what did arrive, so a failing test shows the traffic.
        """
        match: MessagePredicate
        if predicate is None:
            match = lambda m: True  # noqa: E731
        elif isinstance(predicate, str):
            topic_filter = predicate
            match = lambda m: _matches(topic_filter, m.topic)  # noqa: E731
        else:
            match = predicate
        limit = self.timeout if timeout is None else timeout
        found: list[Message] = []
        scanned = 0

        def enough() -> bool:  # scans only what arrived since the last wake-up: O(n) per call
            nonlocal scanned
            found.extend(m for m in self._messages[scanned:] if match(m))
            scanned = len(self._messages)
            return len(found) >= count

        with self._cond:
            if self._cond.wait_for(enough, limit):
                return found
            seen = [(m.topic, m.payload[:80]) for m in self._messages]
        raise TimeoutError(f"{self.client_id}: {count} matching message(s) not received within {limit} s; "
                           f"received {len(seen)}: {seen}")

    # --- publishing -----------------------------------------------------------------------

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason_code: ReasonCode,
                    properties: Properties | None) -> None:
        with self._cond:
            self._acks[mid] = reason_code
            self._cond.notify_all()

    def publish(self, topic: str, payload: bytes | str | None = b"", qos: int = 1, retain: bool = False,
                properties: Properties | None = None, *, response_topic: str | None = None,
                correlation_data: bytes | None = None, wait: bool = True,
                check: bool = True) -> ReasonCode | None:
        """Publish and (by default) wait for the PUBACK; return its reason code (None if not waiting).

        With MQTT 5 a broker's ACL refusal comes back as a failure code (135 Not authorized)
        rather than silence: raised as ``PublishRefused`` unless ``check=False``. Note that
        16 "No matching subscribers" is a success code. ``response_topic``/``correlation_data``
        set the MQTT 5 properties a command sender uses to get its reply routed back.
        """
        if response_topic is not None or correlation_data is not None:
            properties = properties or Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic is not None:
                properties.ResponseTopic = response_topic
            if correlation_data is not None:
                properties.CorrelationData = correlation_data
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"{self.client_id}: publish to {topic!r} failed: "
                                  f"{mqtt.error_string(info.rc)}")
        if not wait:
            return None
        with self._cond:
            if not self._cond.wait_for(lambda: info.mid in self._acks, self.timeout):
                raise TimeoutError(f"{self.client_id}: no PUBACK for {topic!r} within {self.timeout} s")
            reason = self._acks.pop(info.mid)
        if check and reason.is_failure:
            raise PublishRefused(topic, reason)
        return reason

    # --- lifecycle ------------------------------------------------------------------------

    def _stop_loop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def close(self) -> None:
        """Disconnect cleanly and join paho's thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_loop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

