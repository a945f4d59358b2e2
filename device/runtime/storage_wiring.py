"""The daemon's storage plumbing: degraded start, memory alarms, the storage thread, shutdown.

Kept out of daemon.py so the start-up order stays readable there. What it guarantees: a full,
read-only, missing or damaged state partition never stops the kiosk from starting (the outbox
runs from memory with a ``storage`` fault); alarms the outbox cannot write are published from
memory; and a stop never claims to be clean while an alarm is neither on disk nor delivered.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import Event
from safehouse.device.core.inputs import Tick
from safehouse.device.runtime.storage_watch import StorageWatch
from safehouse.services.memory_alarms import MemoryMessage
from safehouse.services.outbox import Outbox
from safehouse.services.outbox_salvage import Damage
from safehouse.services.reserve import SpaceReserve
from safehouse.services.storage_errors import FULL

if TYPE_CHECKING:
    from safehouse.device.runtime.daemon import Daemon

_LOG = logging.getLogger(__name__)
SETTLE_TIMEOUT = 5.0  # shutdown waits this long for an unwritten alarm's PUBACK


def free_reserve_for_outbox(outbox: Outbox, reserve: SpaceReserve) -> None:
    """A disk too full to even open the outbox: the alarm reserve is what it is kept for."""
    if outbox.fault_kind == FULL and reserve.release():
        outbox.recover()


def wire_storage(daemon: Daemon, stats_damage: Damage | None) -> StorageWatch:
    """Memory alarms to the uplink, damage reports to the writer, the storage thread."""
    writer = daemon.runner.writer
    if daemon.uplink is not None:
        daemon.uplink.memory = writer.memory
    for left in writer.memory.spool(daemon.config.control.socket.parent):  # outlives kill -9
        _store_left_alarm(daemon, left)
    writer.damage_sources.append(daemon.outbox.take_damage)
    if stats_damage is not None:
        once = [stats_damage]
        writer.damage_sources.append(lambda: [once.pop()] if once else [])
    if daemon.stats_fault is not None:
        writer.other_faults["stats"] = daemon.stats_fault
    return StorageWatch(daemon.outbox, lambda: daemon.loop.put(Tick()))


def _store_left_alarm(daemon: Daemon, left: MemoryMessage) -> None:
    """An alarm a killed run could neither write nor deliver: into the outbox before anything of
    this run (its seq is below theirs, above the queued rows'), so it goes out in seq order."""
    if daemon.outbox.fault is not None:
        return  # still no disk: it is sent from memory
    try:
        daemon.outbox.store(Event.from_json(left.payload.decode("utf-8")), left.topic)
    except (EventLogError, ValueError, TypeError) as exc:
        _LOG.error("alarm %s left by the previous run not written (%s): sent from memory", left.event_id, exc)
        return
    daemon.runner.writer.memory.stored(left.event_id)


def settle_alarms(daemon: Daemon, timeout: float = SETTLE_TIMEOUT) -> list[str]:
    """At stop: one more write attempt, then wait (bounded) for the PUBACK of any alarm that
    exists only in memory. The event ids still unsettled (the caller logs them critically)."""
    writer = daemon.runner.writer
    memory = writer.memory
    if not writer.pending and not memory.unsettled():
        return []
    daemon.loop.submit(Tick(), 1.0)  # a last try at writing them
    if not memory.unsettled():
        return []
    _LOG.critical("stopping with %d alarm(s) only in memory: waiting up to %.0f s for the broker",
                  len(memory.unsettled()), timeout)
    deadline = time.monotonic() + timeout
    memory.wait_settled(max(0.0, deadline - time.monotonic()))
    return memory.unsettled()
