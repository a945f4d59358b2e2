"""A TCP port that accepts and says nothing: a broker that is up but wedged.

Not a mock of mosquitto: it stands for the failure a real broker cannot be made to show on
demand (a hung process, a middlebox that eats packets). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import selectors
import socket
import threading
from typing import Self, cast

from tests.rig.net import HOST

__all__ = ["Blackhole"]


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
