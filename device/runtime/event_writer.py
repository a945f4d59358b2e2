"""Writing decided events: durable first, and never waiting for storage that is failing.

Each event gets its seq the moment it is decided (``add``: in memory, above the outbox's
durable seq lease), then is written (``flush``). When the write fails:

- a full disk (``StorageFull``): the alarm reserve is given back and the write tried again at
  once — the only case where the reserve is spent;
- anything else, or still no room: an alarm (and a storage fault report) is handed to the
  uplink's memory queue and published at once, QoS 1, with its seq and event_id; every event
  stays queued here, in order, and is written the moment the outbox works again (same
  event_id: the precinct keeps one copy). Non-alarm events wait in a bounded queue; the
  oldest are dropped beyond ``MEMORY_CAP``, counted and logged.

An event that cannot be written for a reason other than storage never blocks the events
behind it. One whose text is not valid Unicode (a lone surrogate: a stray byte that got past
the boundary) is written with U+FFFD in place of that text, under its own seq and event_id, and
the original is logged; anything else the outbox refuses is set aside (an alarm still leaves
from memory). Both are logged critically and counted (``unwritable_event``); a set-aside event
is "unsettled" until the broker has it, so a stop is never called clean while it is not.

Storage reports become events here too: ``storage_full``/``storage_restored`` (the reserve)
and ``storage_damaged`` (a quarantined and salvaged file, with the seq range that may be
missing), taken from ``damage_sources`` once their salvage is done.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

from safehouse.device.core import codes, text
from safehouse.device.core.clock import Clock, iso_utc
from safehouse.device.core.effects import Emit
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import ALARM_TYPES, Event
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.outbox import OutboxFull
from safehouse.services.outbox_salvage import Damage
from safehouse.services.storage_errors import FULL

_LOG = logging.getLogger(__name__)
MEMORY_CAP = 1000  # non-alarm events kept in memory while storage fails
ASIDE_CAP = 100  # events set aside (never writable) remembered for `unsettled()` and `record_of()`
SENT_FROM_MEMORY = (*ALARM_TYPES, "storage_damaged")
FieldMaker = Callable[[str, str, "int | None", bool, "dict[str, object]"], "dict[str, object]"]


class EventSink(Protocol):
    @property
    def last_seq(self) -> int: ...
    @property
    def near_full(self) -> bool: ...
    @property
    def fault(self) -> str | None: ...
    def admit(self, fields: Mapping[str, Any]) -> None: ...
    def issue(self, fields: Mapping[str, Any]) -> Event: ...
    def store(self, event: Event, topic: str, *, delivered: bool = False) -> Event: ...
    def checkpoint(self) -> bool: ...
    def salvage_due(self) -> bool: ...


class Reserve(Protocol):
    def release(self) -> int: ...
    def rearm_due(self) -> bool: ...


class Waker(Protocol):
    def wake(self, urgent: bool = False) -> None: ...


class _NoReserve:
    """No alarm reserve (a writer built without one, as in unit tests): nothing to give back."""

    def release(self) -> int:
        return 0

    def rearm_due(self) -> bool:
        return False


class _NoWaker:
    def wake(self, urgent: bool = False) -> None:
        """Nobody to wake: the kiosk is offline by design."""


NO_RESERVE: Reserve = _NoReserve()
NO_WAKER: Waker = _NoWaker()


def event_fields(clock: Clock, *, device_id: str, precinct: str, boot_id: str) -> FieldMaker:
    """Every event's common fields: who sent it, when (wall, monotonic, clock synced) and on which boot."""
    device = {"device_id": device_id, "precinct": precinct, "boot_id": boot_id}

    def fields(event_id: str, type_: str, code: int | None, test: bool,
               data: dict[str, object]) -> dict[str, object]:
        return {**device, "event_id": event_id, "type": type_, "code": code,
                "ts": iso_utc(clock.wall()), "clock_synced": clock.synced(),
                "mono": round(clock.mono(), 6), "test": test, "data": data}

    return fields


class EventWriter:
    """Owned by the core loop's thread (the shell); ``memory`` is shared with the uplink.

    ``damage_sources`` report salvaged files once their salvage is done; ``faults`` are the
    storage faults known at start-up besides the outbox's own (e.g. the daily counts kept in
    memory), shown in ``storage_fault()``.
    """

    def __init__(self, sink: EventSink, topic: str, make_fields: FieldMaker, *,
                 listeners: Sequence[Callable[[Event], None]] = (), rejections: Counter[str] | None = None,
                 memory: MemoryAlarms | None = None, messenger: Waker = NO_WAKER,
                 reserve: Reserve = NO_RESERVE, damage_sources: Sequence[Callable[[], list[Damage]]] = (),
                 faults: Mapping[str, str] | None = None) -> None:
        self._sink, self._topic, self._fields = sink, topic, make_fields
        self.listeners = list(listeners)
        self.rejections: Counter[str] = Counter() if rejections is None else rejections
        self.memory = MemoryAlarms() if memory is None else memory
        self.messenger = messenger
        self.reserve = reserve
        self.damage_sources = tuple(damage_sources)
        self.other_faults: dict[str, str] = dict(faults or {})
        self._queue: deque[Event] = deque()
        self._aside: deque[tuple[Event, str]] = deque(maxlen=ASIDE_CAP)  # (event, why) never writable
        self._storage_short = False  # a storage_full event went out; storage_restored is owed
        self._was_near_full = False
        self._failing: str | None = None  # why the last write failed (logged once per episode)
        self._handed: set[str] = set()  # event ids handed to the memory queue
        self._listener_failing = False
        self.dropped = 0
        self._written_alarms: list[Event] = []  # in this flush: checkpointed, or kept in /run too

    @property
    def pending(self) -> int:
        """Events decided but not yet durable (normally 0)."""
        return len(self._queue)

    @property
    def last_seq(self) -> int:
        return self._sink.last_seq

    def storage_fault(self) -> str | None:
        """The storage fault shown in status, STATUS=, telemetry and the selftest; None when all is well."""
        faults = [f"outbox {self._sink.fault}"] if self._sink.fault else []
        faults += [f"{name} {fault}" for name, fault in self.other_faults.items()]
        if self._queue and not faults:
            faults.append(f"{len(self._queue)} event(s) not yet written")
        return "; ".join(faults)[:300] or None

    def add(self, emit: Emit) -> None:
        self._add(self._fields(emit.event_id, emit.type, emit.code, emit.test, dict(emit.data)))

    def _add(self, fields: dict[str, object]) -> None:
        try:
            self._sink.admit(fields)
        except OutboxFull as exc:
            self.rejections["outbox_full"] += 1
            _LOG.critical("event %s (%s) DROPPED: %s", fields["event_id"], fields["type"], exc)
            return
        event = self._encodable(self._sink.issue(fields))
        if event.type not in SENT_FROM_MEMORY:
            self._bound_queue()
        self._queue.append(event)
        _LOG.info("event %s", event.summary())
        for listener in self.listeners:
            try:
                listener(event)
            except EventLogError as exc:  # e.g. the daily counts on a full disk: said once, not per event
                if not self._listener_failing:
                    _LOG.error("event #%d not counted (and later ones while this lasts): %s", event.seq, exc)
                self._listener_failing = True
                continue
            except Exception:
                _LOG.exception("event listener failed on #%d", event.seq)
                continue
            self._listener_failing = False

    def _encodable(self, event: Event) -> Event:
        """``event``, or (its text not valid Unicode) a copy under the same seq and event_id with
        U+FFFD for that text: the original is logged, never written, and never blocks the queue."""
        try:
            event.to_json().encode("utf-8")
            return event
        except (ValueError, TypeError) as exc:  # UnicodeEncodeError is a ValueError
            why = str(exc)
        self.rejections["unwritable_event"] += 1
        _LOG.critical("event #%d %s (%s) cannot be encoded (%s): written with U+FFFD for its bad text; "
                      "the original data was %s", event.seq, event.event_id, event.type, why,
                      ascii(dict(event.data))[:500])
        data = text.repaired(dict(event.data))
        data["repaired"] = "text that was not valid Unicode is replaced by U+FFFD"
        return replace(event, data=data)

    def _bound_queue(self) -> None:
        others = [e for e in self._queue if e.type not in SENT_FROM_MEMORY]
        if len(others) < MEMORY_CAP:
            return
        oldest = others[0]
        self._queue.remove(oldest)
        self.dropped += 1
        self.rejections["memory_dropped"] += 1
        _LOG.critical("storage failing: event #%d %s (%s) DROPPED from memory (%d kept, %d dropped so far)",
                      oldest.seq, oldest.event_id, oldest.type, MEMORY_CAP, self.dropped)

    def flush(self) -> bool:
        """Write what waits, in order; True when nothing is left in memory.

        A write can reveal damage (a stored seq that skips ahead is a gap the outbox reports):
        its report is taken and written in this same flush, not left for whatever input
        comes next (on an idle kiosk, nothing might come before a stop)."""
        self._take_damage()
        wrote, urgent, released = self._write_queue()
        if self._storage_events(released) | self._take_damage():
            more = self._write_queue()
            wrote, urgent = wrote or more[0], urgent or more[1]
        if wrote:
            self.messenger.wake(urgent)
        if urgent:  # the alarm is on its way: now also into the database file itself
            self._checkpoint()
        self._written_alarms.clear()
        return not self._queue

    def _checkpoint(self) -> None:
        """Into the database file, so a lost WAL cannot take the alarm. When that fails (a full
        disk cannot grow the file), each alarm just written is also copied into the runtime
        folder, where the next start takes it back (services/alarm_spool.py), until a later
        checkpoint gets everything into the file. It is not sent from memory: it is on disk, in
        its place in the queue."""
        if self._sink.checkpoint():
            self.memory.drop_copies()
            return
        for event in self._written_alarms:
            _LOG.warning("alarm #%d %s is in the outbox's WAL only (checkpoint failed): copied into the "
                         "runtime folder until a checkpoint succeeds", event.seq, event.event_id)
            self.memory.keep_copy(event.event_id, event.to_json().encode("utf-8"))

    def _take_damage(self) -> bool:
        """A ``storage_damaged`` event for each report the sources have ready; True if any."""
        took = False
        for source in self.damage_sources:
            for damage in source():
                self._fault_event("storage_damaged", codes.STORAGE_DAMAGED, damage.as_data())
                took = True
        return took

    def _write_queue(self) -> tuple[bool, bool, int]:
        wrote = urgent = False
        released = 0
        while self._queue:
            event = self._queue[0]
            try:
                self._sink.store(event, self._topic, delivered=self.memory.delivered(event.event_id))
            except EventLogError as exc:
                if getattr(exc, "kind", None) == FULL:
                    freed = self.reserve.release()
                    if freed:
                        released += freed
                        continue  # room again: write it now, not at the next retry
                self._from_memory(exc)
                break
            except Exception as exc:  # not storage: retrying would block every event behind it
                self._queue.popleft()
                self._set_aside(event, exc)
                continue
            self._queue.popleft()
            if event.type in SENT_FROM_MEMORY and self._sink.salvage_due():
                # the outbox holds its drain until a damaged file's events are salvaged: the
                # alarm goes out from memory now (the outbox sends it again later: same id)
                self.memory.add(event.event_id, self._topic, event.to_json().encode("utf-8"))
            else:
                self.memory.stored(event.event_id)
            self._handed.discard(event.event_id)
            wrote, urgent = True, urgent or event.type in ALARM_TYPES
            if event.type in ALARM_TYPES:
                self._written_alarms.append(event)
            self._near_full()
        if not self._queue and self._failing is not None:
            _LOG.warning("storage works again: every event kept in memory is written")
            self._failing = None
        return wrote, urgent, released

    def _from_memory(self, exc: Exception) -> None:
        """The write failed: alarms go out from memory now; everything waits for a retry."""
        if self._failing is None:
            _LOG.critical("storage failing (%s): events are kept in memory, alarms sent from memory", exc)
        self._failing = str(exc)
        sent = False
        for event in self._queue:
            if event.type in SENT_FROM_MEMORY and event.event_id not in self._handed:
                self._handed.add(event.event_id)
                self.memory.add(event.event_id, self._topic, event.to_json().encode("utf-8"))
                _LOG.critical("alarm #%d %s (%s) not written (%s): sending it from memory",
                              event.seq, event.event_id, event.type, exc)
                sent = True
        if sent:
            self.messenger.wake(True)

    def _set_aside(self, event: Event, exc: Exception) -> None:
        """Out of the queue, logged and counted; an alarm still goes out from memory."""
        self.rejections["unwritable_event"] += 1
        self._aside.append((event, f"cannot be written: {exc}"))
        self._handed.discard(event.event_id)
        _LOG.critical("event #%d %s (%s) cannot be written (%s: %s): SET ASIDE, the events behind it "
                      "are written; the event was %s", event.seq, event.event_id, event.type,
                      type(exc).__name__, exc, ascii(event.to_json())[:800])
        if event.type in SENT_FROM_MEMORY:
            self.memory.add(event.event_id, self._topic, event.to_json().encode("utf-8"))
            self.messenger.wake(True)

    def unsettled(self) -> list[str]:
        """Accepted events neither on disk nor acknowledged by the broker: while there is one, a
        stop is not clean. Read from another thread at stop (the queue is copied in one step)."""
        held = [e.event_id for e in (*(e for e, _ in tuple(self._aside)), *tuple(self._queue))
                if not self.memory.delivered(e.event_id)]
        return list(dict.fromkeys([*held, *self.memory.unsettled()]))

    def _near_full(self) -> None:
        near = self._sink.near_full
        if near and not self._was_near_full:
            self._add(self._fields(str(uuid.uuid4()), "outbox_near_full", codes.COMM_TROUBLE, False, {}))
        self._was_near_full = near

    def _storage_events(self, released: int) -> bool:
        """``storage_full`` once the reserve was spent; ``storage_restored`` once it is back."""
        if released:
            self._storage_short = True
            self._fault_event("storage_full", codes.PERIPHERAL_TROUBLE, {"reserve_released_bytes": released})
            return True
        if self._storage_short and self.reserve.rearm_due():
            self._storage_short = False
            self._fault_event("storage_restored", codes.PERIPHERAL_TROUBLE,
                              {"dropped_from_memory": self.dropped})
            return True
        return False

    def _fault_event(self, type_: str, code: int, data: dict[str, object]) -> None:
        self._add(self._fields(str(uuid.uuid4()), type_, code, False, data))

    def record_of(self, event_id: str, link: str = "") -> tuple[str, str]:
        """Where an event stands, for `safehouse press`: (durable|delivered|sent_from_memory|
        memory_only, why)."""
        aside = [why for e, why in tuple(self._aside) if e.event_id == event_id]
        if not aside and all(e.event_id != event_id for e in self._queue):
            return "durable", "written to the outbox on disk (fsynced); the uplink delivers it from there"
        fault = aside[0] if aside else self._sink.fault or self._failing or "the write failed"
        later = "set aside, never written" if aside else "written to disk when storage returns"
        if self.memory.delivered(event_id):
            return "delivered", (f"NOT on disk ({fault}); sent from memory and acknowledged by the "
                                 f"broker; {later}")
        if self.memory.was_published(event_id):
            return "sent_from_memory", (f"NOT on disk ({fault}); published from memory, no broker "
                                        f"acknowledgement yet; {later}")
        return "memory_only", (f"NOT on disk ({fault}) and not sent yet (link {link or 'down'}); kept in "
                               "memory: sent the moment the broker is reachable, lost if power fails first")
