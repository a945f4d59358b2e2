"""What the keypad reports about itself (connected, counters, flooding) and its loss/restore handlers.

Kept apart from the reader (``drivers/keypad.py``: the thread, the decoding, the reopening)
because this is the side the daemon, ``safehouse status`` and the tests read from any thread
without touching the port: each value is one attribute the reader keeps current. ``Keypad``
extends ``KeypadStatus`` and sets every attribute declared here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from safehouse.drivers.keypad_guard import FloodGuard

__all__ = ["FloodCallback", "KeyCallback", "KeypadStatus", "LostCallback", "NoiseCallback",
           "RestoredCallback"]

KeyCallback = Callable[[str], object]
LostCallback = Callable[[str], object]
RestoredCallback = Callable[[], object]
NoiseCallback = Callable[[int], object]
FloodCallback = Callable[[bool, str, int], object]  # (started, why / how long, bytes discarded)


class KeypadStatus:
    """The read-only view of a keypad and its two reported-state handlers; set by its reader."""

    _port_name: str
    _opened: threading.Event
    _keys: int
    _rejected: int
    _guard: FloodGuard
    _when_lost: LostCallback | None
    _when_restored: RestoredCallback | None

    def _poke(self) -> None:
        """Wake the reader, so a newly assigned handler hears what it missed (the reader's own)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<Keypad {self._port_name} {state}>"

    @property
    def is_connected(self) -> bool:
        return self._opened.is_set()

    @property
    def keys(self) -> int:
        """Key bytes delivered (or offered to a missing handler) since start."""
        return self._keys

    @property
    def rejected_bytes(self) -> int:
        """Bytes that were neither a key nor CR/LF, outside floods: noise, or the wrong baud rate."""
        return self._rejected

    @property
    def discarded_bytes(self) -> int:
        """Bytes thrown away unread by the flood guard (floods and the quiet wait after them)."""
        return self._guard.discarded

    @property
    def flooding(self) -> bool:
        """A flood episode is under way: input is ignored until the line is quiet."""
        return self._guard.episode is not None

    @property
    def when_lost(self) -> LostCallback | None:
        return self._when_lost

    @when_lost.setter
    def when_lost(self, fn: LostCallback | None) -> None:
        self._when_lost = fn
        self._poke()  # deliver a loss nobody was listening for yet

    @property
    def when_restored(self) -> RestoredCallback | None:
        return self._when_restored

    @when_restored.setter
    def when_restored(self, fn: RestoredCallback | None) -> None:
        self._when_restored = fn
        self._poke()
