"""One client of the control socket as its I/O loop sees it, and the one-line refusal it may get.

Kept apart from the loop (``services/control_io.py``) so the admission rules
(``services/control_admission.py``) and the request handling (``services/control.py``) can
name a connection without importing the loop that drives it.
"""

from __future__ import annotations

import json
import selectors
import socket
from dataclasses import dataclass, field

__all__ = ["Conn", "error_line"]


def error_line(error: str) -> bytes:
    """The answer line of a request refused before it reached a handler (busy, too long, idle)."""
    return (json.dumps({"ok": False, "error": error}) + "\n").encode("utf-8")


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    deadline: float
    reserved: bool = False
    buf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    busy: bool = False  # a request is with a worker
    eof: bool = False  # the client finished sending: answer what came, then close
    closing: bool = False  # close once ``out`` is written
    closed: bool = False
    events: int = selectors.EVENT_READ  # what the selector watches now (0: unregistered)
