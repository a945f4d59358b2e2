"""The one-time take-over of ``events.jsonl``, the interim event log of releases before the outbox.

Everything about that file is here and nothing writes it any more: the outbox imports its
events at its first start (``import_legacy_log``, seqs and ids kept) and renames it
(``retire_legacy_log``); until then ``safehouse events`` shows them (``read_events``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import Event
from safehouse.services.fsync import fsync_dir
from safehouse.services.outbox_schema import insert_event, meta_get
from safehouse.services.topics import Topics

_LOG = logging.getLogger(__name__)
FILENAME = "events.jsonl"


def log_path(state_dir: Path) -> Path:
    return state_dir / FILENAME


def read_events(state_dir: Path) -> Iterator[Event]:
    """Yield the old log's events in order; nothing if there is none.

    A last line without its newline was torn by a power cut mid-write and never acknowledged
    to anyone: it is left out. An unreadable line is logged and skipped.
    """
    path = log_path(state_dir)
    if not path.exists():
        return
    with path.open("r", encoding="utf-8") as f:
        for line in f:
            if not line.endswith("\n"):
                return
            if not line.strip():
                continue
            try:
                yield Event.from_json(line)
            except (ValueError, TypeError) as exc:
                _LOG.error("event log %s: skipping unreadable line: %s", path, exc)


def import_legacy_log(conn: sqlite3.Connection, state_dir: Path, now: float) -> bool:
    """Take over the interim ``events.jsonl`` (seqs and ids kept, all pending); False if none.

    Part of the caller's transaction; ``retire_legacy_log`` renames the file once that is
    committed. It runs whenever the file is still there, not only on a new outbox, so a crash
    between commit and rename is finished on the next start (events already taken over are
    recognised by ``event_id``). Their topic is rebuilt from their own precinct and device id.
    """
    legacy = log_path(state_dir)
    if not legacy.exists():
        return False
    try:
        events = list(read_events(state_dir))
    except OSError as exc:
        raise EventLogError(f"cannot read the old event log {legacy} to import it: {exc}; "
                            "check it is readable by the daemon's user") from exc
    last = int(meta_get(conn, "last_seq"))
    imported = skipped = 0
    for event in events:
        if conn.execute("SELECT 1 FROM messages WHERE event_id = ?", (event.event_id,)).fetchone():
            continue
        if event.seq <= last:
            skipped += 1
            continue
        insert_event(conn, event, Topics(event.precinct, event.device_id).events, now)
        last = event.seq
        imported += 1
    _LOG.warning("outbox: importing %d event(s) from %s (last seq %d)", imported, legacy, last)
    if skipped:
        _LOG.error("outbox: %d event(s) of %s reuse a seq the outbox already holds; not imported",
                   skipped, legacy)
    return True


def retire_legacy_log(state_dir: Path) -> None:
    legacy = log_path(state_dir)
    done = legacy.with_name(legacy.name + ".imported")
    os.replace(legacy, done)
    fsync_dir(state_dir)
    _LOG.warning("outbox: the old event log is kept as %s; the outbox now holds its events", done)
