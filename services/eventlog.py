"""The durable event log: JSON lines under ``state_dir``, fsync'd before ``append`` returns.

The log itself is the record of ``seq``: on open, the last complete line gives the next
number, so seq stays gap-free across restarts and power cuts without a second file that
could disagree with it. A line torn by a power cut (no newline, or not JSON) was never
acknowledged to anyone, so it is cut off. (The MQTT outbox will replace this log.)
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import Event
from safehouse.services.fsync import fsync_dir

_LOG = logging.getLogger(__name__)
FILENAME = "events.jsonl"
_TAIL = 64 * 1024


def log_path(state_dir: Path) -> Path:
    return state_dir / FILENAME


def _recover_tail(path: Path) -> int:
    """Cut a torn last line off and return the last complete event's seq (0 if none)."""
    with path.open("rb+") as f:
        size = f.seek(0, os.SEEK_END)
        start = max(0, size - _TAIL)
        while True:
            f.seek(start)
            chunk = f.read(size - start)
            end = chunk.rfind(b"\n") + 1
            if end < len(chunk):
                _LOG.warning("event log %s: cutting %d torn bytes at the end", path, len(chunk) - end)
                f.truncate(start + end)
                os.fsync(f.fileno())
                size, chunk = start + end, chunk[:end]
            lines = [ln for ln in chunk.split(b"\n") if ln.strip()]
            if start == 0 or len(lines) > 1:
                break
            start = max(0, start - _TAIL)  # one very long line: read further back
        if start > 0:
            lines = lines[1:]  # the first line of a tail read may be partial
        for raw in reversed(lines):
            try:
                return int(json.loads(raw)["seq"])
            except (ValueError, KeyError, TypeError):
                _LOG.error("event log %s: unreadable line skipped while recovering seq", path)
        return 0


class EventLog:
    """Append-only, fsync'd JSON-lines store that assigns ``seq``."""

    def __init__(self, state_dir: Path) -> None:
        self.path = log_path(state_dir)
        self._lock = threading.Lock()
        try:
            state_dir.mkdir(mode=0o750, parents=True, exist_ok=True)  # umask 000 must not make it 0777
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            if created:
                fsync_dir(state_dir)
            self._seq = _recover_tail(self.path)
        except OSError as exc:
            raise EventLogError(
                f"cannot open the event log {self.path}: {exc.strerror or exc}; "
                "check device.state_dir exists and is writable by the daemon's user"
            ) from exc
        self._closed = False

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, fields: Mapping[str, Any]) -> Event:
        """Assign the next seq, write the event and fsync; return only once it is durable."""
        with self._lock:
            if self._closed:
                raise EventLogError(f"event log {self.path} is closed")
            event = Event(seq=self._seq + 1, **fields)
            line = (event.to_json() + "\n").encode("utf-8")
            try:
                written = os.write(self._fd, line)
                if written != len(line):
                    raise OSError(f"short write ({written} of {len(line)} bytes)")
                os.fsync(self._fd)
            except OSError as exc:
                raise EventLogError(f"cannot write the event log {self.path}: {exc}") from exc
            self._seq = event.seq
            return event

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                os.close(self._fd)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_events(state_dir: Path, *, follow: bool = False, poll: float = 0.2,
                stop: threading.Event | None = None) -> Iterator[Event]:
    """Yield the log's events in order; with ``follow``, keep yielding new ones as they land."""
    path = log_path(state_dir)
    if not path.exists() and not follow:
        return
    while not path.exists():
        if stop is not None and stop.wait(poll):
            return
        if stop is None:
            time.sleep(poll)
    with path.open("r", encoding="utf-8") as f:
        pending = ""
        while True:
            chunk = f.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    line, pending = pending.strip(), ""
                    if line:
                        try:
                            yield Event.from_json(line)
                        except (ValueError, TypeError) as exc:
                            _LOG.error("event log %s: skipping unreadable line: %s", path, exc)
                continue
            if not follow or (stop is not None and stop.is_set()):
                return
            if stop is not None:
                stop.wait(poll)
            else:
                time.sleep(poll)
