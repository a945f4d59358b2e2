"""Storage at start-up and at stop: what keeps a failing state partition from stopping the kiosk.

A full, read-only, missing or damaged state partition never stops the kiosk from starting (the
outbox runs from memory with a ``storage`` fault); alarms a killed run could neither write nor
deliver are taken back; damaged files are reported once their salvage is done; and a stop never
claims to be clean while an alarm is neither on disk nor delivered. The assembly root
(device/runtime/assembly.py) calls these in its build order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from safehouse.device.core.errors import EventLogError
from safehouse.device.core.events import Event
from safehouse.device.core.files import make_folders
from safehouse.device.core.inputs import Input, Tick
from safehouse.device.runtime.event_writer import SENT_FROM_MEMORY, EventWriter
from safehouse.services.alarm_spool import AlarmSpool
from safehouse.services.command_ids import CommandIds
from safehouse.services.event_check import Expected
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.outbox import Outbox
from safehouse.services.outbox_salvage import Damage
from safehouse.services.reserve import SpaceReserve
from safehouse.services.storage_errors import FULL

_LOG = logging.getLogger(__name__)
SETTLE_TIMEOUT = 5.0  # shutdown waits this long for an unwritten alarm's PUBACK

DamageSource = Callable[[], list[Damage]]


def make_state_folders(*folders: Path) -> None:
    """The state and runtime folders, and every missing folder above them, made with explicit
    modes before any part makes them with ``mkdir(parents=True)`` (whose parents get 0777 minus
    the umask: world-writable under umask 000). One that cannot be made (a read-only or missing
    partition) is left to the part that needs it, which reports the fault."""
    for folder in folders:
        try:
            make_folders(folder)
        except OSError as exc:
            _LOG.warning("cannot make the folder %s: %s", folder, exc)


def free_reserve_for_outbox(outbox: Outbox, reserve: SpaceReserve) -> None:
    """A disk too full to even open the outbox: the alarm reserve is what it is kept for."""
    if outbox.fault_kind == FULL and reserve.release():
        outbox.recover()


def take_back_left_alarms(memory: MemoryAlarms, outbox: Outbox, spool_dir: Path, *, topic: str,
                          device_id: str, precinct: str) -> list[Damage]:
    """Alarms a killed run could neither write nor deliver (kept in ``spool_dir``, which outlives
    kill -9): into the outbox before anything of this run (their seq is below this run's, above
    the queued rows'), so they go out in seq order; still no disk, they are sent from memory.

    Each file is checked as an alarm of this kiosk (services/alarm_spool.py); ``topic`` comes
    from the config, never from a file. One whose seq the outbox already gave another event is
    set aside like a garbled one: storing it would fault the outbox. Returns what was set aside,
    for ``storage_damaged`` reports.
    """
    spool = AlarmSpool(spool_dir)
    memory.keep_in(spool)
    expected = Expected(device_id, precinct, frozenset(SENT_FROM_MEMORY), max_seq=outbox.last_seq)
    left = spool.read_back(expected)
    if left:
        _LOG.critical("%d alarm(s) the previous run could neither write nor deliver: sending them now",
                      len(left))
    seqs: set[int] = set()
    for event in left:
        clash = "an earlier file" if event.seq in seqs else _stored_elsewhere(outbox, event)
        if clash is not None:
            spool.set_aside(spool.path_of(event.event_id).name, "seq_taken",
                            f"seq {event.seq} already names {clash}")
            continue
        seqs.add(event.seq)
        memory.add(event.event_id, topic, event.to_json().encode("utf-8"))
        if outbox.fault is not None:
            continue
        try:
            outbox.store(event, topic)
        except EventLogError as exc:
            _LOG.error("alarm %s left by the previous run not written (%s): sent from memory",
                       event.event_id, exc)
            continue
        memory.stored(event.event_id)
    return spool.damage


def _stored_elsewhere(outbox: Outbox, event: Event) -> str | None:
    """The stored event that already has ``event``'s seq under another event id, if any."""
    if outbox.fault is not None:
        return None  # nothing can be stored now: it is sent from memory, where seq cannot clash
    try:
        found = outbox.events(since_seq=event.seq - 1, limit=1)
    except (EventLogError, ValueError) as exc:
        _LOG.error("cannot check the seq of alarm %s left by the previous run: %s", event.event_id, exc)
        return None
    if found and found[0].seq == event.seq and found[0].event_id != event.event_id:
        return f"event {found[0].event_id} in the outbox"
    return None


def damage_sources(outbox: Outbox, found: Sequence[Damage | None]) -> list[DamageSource]:
    """Where ``storage_damaged`` reports come from: the outbox's salvages, and what was found
    damaged and set aside at start-up (the daily counts, unsent-alarm files, the keypad
    lockout record), reported once."""
    sources: list[DamageSource] = [outbox.take_damage]
    once = [d for d in found if d is not None]
    if once:
        sources.append(lambda: [once.pop(0) for _ in range(len(once))])
    return sources


def open_command_ids(state_dir: Path, spare_dir: Path) -> tuple[CommandIds, str | None]:
    """The executed precinct command ids, and a storage fault when they cannot be kept on the
    state partition (then beside the control socket, in ``spare_dir``, for this boot)."""
    try:
        return CommandIds(state_dir), None
    except EventLogError as exc:
        _LOG.critical("%s; command ids kept in %s until storage returns", exc, spare_dir)
        return CommandIds(spare_dir), f"unavailable: {exc}"


def settle_alarms(writer: EventWriter, submit: Callable[[Input, float], object],
                  timeout: float = SETTLE_TIMEOUT) -> list[str]:
    """At stop: one more write attempt, then wait (bounded) for the PUBACK of any alarm that
    exists only in memory. The ids of accepted events still neither on disk nor acknowledged by
    the broker, alarms or not (the caller logs them critically)."""
    memory = writer.memory
    if not writer.unsettled():
        return []
    submit(Tick(), 1.0)  # a last try at writing them
    if not memory.unsettled():
        return writer.unsettled()
    _LOG.critical("stopping with %d alarm(s) only in memory: waiting up to %.0f s for the broker",
                  len(memory.unsettled()), timeout)
    memory.wait_settled(timeout)
    return writer.unsettled()
