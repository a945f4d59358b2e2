"""The keypad line's flood guard: what a person could have typed gets through, a flood does not.

A volunteer types a few keys a second; a keypad that sends whole lines sends one entry at a
time. A line that carries more than that — a megabyte of digits, random noise, a wrong baud
rate, a device hung on the cable — must neither reach the core queue (every key is a queue
item and a buzzer click: 1 MB of digits once grew the daemon by 140 MB and delayed a panic
press by 5 s) nor turn into wrong PINs and a lockout.

So every chunk read from the port is judged as a whole *before* any of its keys is passed on,
against a one-second sliding window: more than ``max_keys`` keys, more than ``max_entries``
entries (``#``) or more than ``max_noise`` bytes that are not keys is a flood. A flood
discards the chunk, starts an *episode* and ignores the line until it has been silent for
``ignore_s`` (every byte that arrives meanwhile restarts that wait, so the first key accepted
afterwards begins a fresh entry typed by a person). Fewer noise bytes than a flood pass on as
a count, so the core can discard the entry they fell into. Memory is bounded by ``WINDOW_CAP``.

Pure: time is passed in (monotonic seconds); the driver calls it from its reader thread.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

KEYS = frozenset(b"0123456789*#")
SEPARATORS = frozenset(b"\r\n")
WINDOW = 1.0  # seconds the rates are measured over
WINDOW_CAP = 512  # chunks remembered in the window; a full window is itself a flood


@dataclass(frozen=True)
class Verdict:
    """What to do with one chunk: the items to deliver in order (a key, or a count of noise
    bytes), and whether a flood episode started with it (``flood`` names why)."""

    items: tuple[str | int, ...] = ()
    flood: str | None = None


@dataclass
class Episode:
    """A flood under way: when and why it started, the chunk that started it (``first`` bytes)
    and the bytes discarded after it."""

    started: float
    reason: str
    first: int
    discarded: int = 0


@dataclass
class FloodGuard:
    """One per keypad. ``feed`` judges a chunk; ``poll`` ends an episode once the line is quiet."""

    max_keys: int = 30
    max_entries: int = 3
    max_noise: int = 8
    ignore_s: float = 5.0
    episode: Episode | None = None
    quiet_from: float = float("-inf")  # while an episode lasts, input is ignored until then
    discarded: int = 0  # bytes thrown away (floods and everything during an episode), ever
    _window: deque[tuple[float, int, int, int]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.max_keys < 1 or self.max_entries < 1 or self.max_noise < 1 or self.ignore_s <= 0:
            raise ValueError("keypad flood limits must be positive")

    def feed(self, data: bytes, now: float) -> Verdict:
        if self.episode is not None:
            self.episode.discarded += len(data)
            self.discarded += len(data)
            self.quiet_from = now + self.ignore_s  # still flooding: wait for silence again
            return Verdict()
        keys = sum(1 for b in data if b in KEYS)
        entries = data.count(b"#")
        noise = len(data) - keys - sum(1 for b in data if b in SEPARATORS)
        self._prune(now)
        self._window.append((now, keys, entries, noise))
        reason = self._over_limit()
        if reason is not None:
            self._window.clear()
            self.episode = Episode(now, reason, len(data))
            self.discarded += len(data)
            self.quiet_from = now + self.ignore_s
            return Verdict(flood=reason)
        return Verdict(_items(data))

    def poll(self, now: float) -> Episode | None:
        """The episode that just ended (the line was quiet for ``ignore_s``), if any."""
        episode = self.episode
        if episode is None or now < self.quiet_from:
            return None
        self.episode = None
        return episode

    def _prune(self, now: float) -> None:
        while self._window and now - self._window[0][0] >= WINDOW:
            self._window.popleft()

    def _over_limit(self) -> str | None:
        keys = sum(w[1] for w in self._window)
        entries = sum(w[2] for w in self._window)
        noise = sum(w[3] for w in self._window)
        if noise > self.max_noise:
            return f"{noise} bytes that are not keys within {WINDOW:g} s (noise, or the wrong baud rate)"
        if entries > self.max_entries:
            return f"{entries} entries within {WINDOW:g} s"
        if keys > self.max_keys:
            return f"{keys} keys within {WINDOW:g} s"
        if len(self._window) >= WINDOW_CAP:
            return f"{len(self._window)} bursts within {WINDOW:g} s"
        return None


def _items(data: bytes) -> tuple[str | int, ...]:
    """Keys as one-character strings, each run of noise bytes as its length; separators vanish."""
    out: list[str | int] = []
    noise = 0
    for byte in data:
        if byte in KEYS:
            if noise:
                out.append(noise)
                noise = 0
            out.append(chr(byte))
        elif byte not in SEPARATORS:
            noise += 1
    if noise:
        out.append(noise)
    return tuple(out)
