"""What the daemon would see of a keypad, recorded for the keypad's tests (keys and port).

One definition for ``tests/drivers/test_keypad.py`` (the keys on the line) and
``tests/drivers/test_keypad_port.py`` (the serial port's life), so both watch the driver the
same way: every handler it offers, on the thread it calls them from.
"""

from __future__ import annotations

import threading
from pathlib import Path

from safehouse.drivers.keypad import Keypad


class Recorder:
    """What the daemon would see: keys, losses and restorations, in order."""

    def __init__(self, keypad: Keypad) -> None:
        self.lock = threading.Lock()
        self.keys: list[str] = []
        self.lost: list[str] = []
        self.restored = 0
        self.noise: list[int] = []
        self.floods: list[tuple[bool, str, int]] = []
        self.threads: set[str] = set()
        keypad.when_key = self.on_key
        keypad.when_lost = self.on_lost
        keypad.when_restored = self.on_restored
        keypad.when_noise = self.on_noise
        keypad.when_flood = self.on_flood

    def on_noise(self, count: int) -> None:
        with self.lock:
            self.noise.append(count)

    def on_flood(self, started: bool, detail: str, discarded: int) -> None:
        with self.lock:
            self.floods.append((started, detail, discarded))

    def on_key(self, key: str) -> None:
        with self.lock:
            self.keys.append(key)
            self.threads.add(threading.current_thread().name)

    def on_lost(self, reason: str) -> None:
        with self.lock:
            self.lost.append(reason)

    def on_restored(self) -> None:
        with self.lock:
            self.restored += 1

    @property
    def typed(self) -> str:
        with self.lock:
            return "".join(self.keys)


def fast_keypad(port: str | Path) -> Keypad:
    """A keypad that retries a lost port within 0.05-0.2 s, so a test need not wait long."""
    return Keypad(str(port), reopen_min=0.05, reopen_max=0.2)
