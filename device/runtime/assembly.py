"""The assembly root: the one place the kiosk is built, bottom-up, each part given what it needs.

Read ``assemble()`` top to bottom: a part appears after everything its constructor takes, so the
build order *is* the dependency order. The core loop's inbox comes first (every producer gets its
``put``); then the outbox (nothing is accepted that cannot be recorded), the alarm reserve (the
evidence store needs its floor), the hardware (the sign lights up), the uplink, the state files
and the state the core starts from, the evidence parts, the event writer and the effect runner
(complete when built), the core loop, the self-test, the telemetry and the control socket.

Nothing here starts a thread: device/runtime/daemon.py starts the parts and runs them. What
must be closed is registered in ``Closers`` as it is built; shutdown runs ``SHUTDOWN_ORDER``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from safehouse.device import __version__
from safehouse.device.core.clock import Clock, read_boot_id
from safehouse.device.core.events import Event
from safehouse.device.core.inputs import Tick
from safehouse.device.runtime import checks
from safehouse.device.runtime.boot_state import starting_state
from safehouse.device.runtime.config import Config
from safehouse.device.runtime.control_handlers import ControlHandlers
from safehouse.device.runtime.effect_runner import EffectRunner, NoBuzzer
from safehouse.device.runtime.event_writer import EventWriter, event_fields
from safehouse.device.runtime.evidence_parts import MB, capture_service, evidence_store
from safehouse.device.runtime.hardware import Hardware
from safehouse.device.runtime.inbox import Inbox
from safehouse.device.runtime.loop import CoreLoop
from safehouse.device.runtime.selftest import CheckFn, Selftest, SelftestRequests
from safehouse.device.runtime.storage_recovery import (
    damage_sources,
    free_reserve_for_outbox,
    make_state_folders,
    open_command_ids,
    take_back_left_alarms,
)
from safehouse.device.runtime.storage_watch import StorageWatch
from safehouse.device.runtime.uplink_assembly import Link, build_uplink, telemetry_timer
from safehouse.drivers.buzzer import SELFTEST_HZ
from safehouse.services.capture import CaptureService
from safehouse.services.control import ControlServer
from safehouse.services.evidence import EvidenceStore
from safehouse.services.lockout_store import LockoutStore
from safehouse.services.memory_alarms import MemoryAlarms
from safehouse.services.outbox import Outbox
from safehouse.services.pin_check import PinChecker
from safehouse.services.reserve import SpaceReserve
from safehouse.services.schedule import ClockJobs
from safehouse.services.stats_open import open_stats
from safehouse.services.telemetry import TelemetryTimer
from safehouse.services.topics import Topics
from safehouse.services.volunteers import VolunteerRegistry

_LOG = logging.getLogger(__name__)

# Shutdown: the control socket and the watchdog first, the uplink before the core loop (it says
# offline "shutdown"), the rejection summary after the loop, the outbox last.
SHUTDOWN_ORDER = ("watchdog", "control socket", "telemetry", "uplink", "capture", "selftest", "clock jobs",
                  "pin checker", "core loop", "command ids", "storage watch", "daily counts",
                  "rejection log", "hardware", "outbox")


class Closers:
    """What is open, by name. ``close()`` closes it in ``SHUTDOWN_ORDER`` (after a failed build,
    whatever was built); a step that fails is logged and the next one runs. Safe to repeat."""

    def __init__(self) -> None:
        self._open: dict[str, Callable[[], object]] = {}

    def add(self, name: str, close: Callable[[], object]) -> None:
        assert name in SHUTDOWN_ORDER, f"{name!r}: give it a place in SHUTDOWN_ORDER"
        self._open[name] = close

    def close(self) -> None:
        for name in SHUTDOWN_ORDER:
            close = self._open.pop(name, None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                _LOG.exception("shutdown step %r failed", name)


@dataclass(frozen=True)
class Kiosk:
    """Every part of the kiosk, built and connected, none started yet."""

    config: Config
    clock: Clock
    boot_id: str
    started: float
    outbox: Outbox
    hardware: Hardware
    uplink: Link
    storage_watch: StorageWatch
    pin_checker: PinChecker
    clock_jobs: ClockJobs
    evidence: EvidenceStore
    capture: CaptureService
    writer: EventWriter
    runner: EffectRunner
    loop: CoreLoop
    selftest: Selftest
    telemetry: TelemetryTimer
    control: ControlServer


def assemble(config: Config, clock: Clock, *, pin_factory: Any, closers: Closers) -> Kiosk:
    cfg, state_dir, spare_dir = config, config.device.state_dir, config.control.socket.parent
    started, boot_id = clock.mono(), read_boot_id()
    topics = Topics(cfg.device.precinct, cfg.device.id, cfg.device.alliance)
    inbox = Inbox()
    # A failing state partition never stops the kiosk: see device/runtime/storage_recovery.py.
    make_state_folders(state_dir, spare_dir)
    outbox = Outbox(state_dir, telemetry_keep=cfg.outbox.telemetry_keep, events_cap=cfg.outbox.events_cap,
                    delivered_retention_h=cfg.outbox.delivered_retention, clock=clock.wall, recover=True,
                    lease_dirs=[spare_dir])
    closers.add("outbox", outbox.close)
    reserve = SpaceReserve(state_dir, int(cfg.outbox.alarm_reserve_mb * MB))
    free_reserve_for_outbox(outbox, reserve)
    hardware = Hardware(cfg, inbox.put, pin_factory=pin_factory, wall=clock.wall)
    closers.add("hardware", hardware.close)
    buzzer = hardware.buzzer or NoBuzzer()
    memory = MemoryAlarms()  # alarms the outbox could not write: the writer adds, the uplink publishes
    uplink = build_uplink(cfg, clock=clock, topics=topics, boot_id=boot_id, outbox=outbox, memory=memory,
                          put=inbox.put, on_state=hardware.status_led.show)
    closers.add("uplink", uplink.close)
    # before anything of this run is written; each file checked, the topic from the config
    spool_damage = take_back_left_alarms(memory, outbox, spare_dir, topic=topics.events,
                                         device_id=cfg.device.id, precinct=cfg.device.precinct)
    stats, stats_damage, stats_fault = open_stats(state_dir, clock=clock.wall)
    closers.add("daily counts", stats.close)
    storage_watch = StorageWatch(outbox, partial(inbox.put, Tick()))
    outbox.on_fault = storage_watch.nudge
    closers.add("storage watch", storage_watch.close)
    command_ids, ids_fault = open_command_ids(state_dir, spare_dir)
    closers.add("command ids", command_ids.close)
    lockouts = LockoutStore(state_dir, clock=clock, boot_id=boot_id, first_lockout=cfg.keypad.lockout_seconds,
                            longest=cfg.keypad.lockout_max_seconds)
    state = starting_state(cfg, on_duty=stats.on_duty(), executed_commands=command_ids.load(), outbox=outbox,
                           lockouts=lockouts, boot_id=boot_id, clock=clock)
    pin_checker = PinChecker(partial(VolunteerRegistry.load, cfg.keypad.volunteers), inbox.put)
    closers.add("pin checker", pin_checker.close)
    clock_jobs = ClockJobs(stats, inbox.put, rollcall_times=cfg.keypad.rollcall_times, clock=clock.wall)
    closers.add("clock jobs", clock_jobs.close)
    reserve.arm()  # once the state files are open: the ballast is set aside after them
    evidence = evidence_store(cfg, clock, has_room=reserve.floor_ok)
    capture = capture_service(cfg, evidence, outbox, topic=topics.evidence, put=inbox.put, wake=uplink.wake)
    closers.add("capture", capture.close)
    # The one link made after construction: the capture waits until the uplink sent its alarm,
    # and the uplink is woken for the evidence the capture queues; neither can come first.
    uplink.on_sent = capture.alarm_sent

    def count(event: Event) -> None:
        stats.record(event.type, event.data, test=event.test)

    faults = {name: fault for name, fault in (("stats", stats_fault), ("command ids", ids_fault)) if fault}
    found_damaged = [stats_damage, *spool_damage, lockouts.damage]  # set aside at start: reported once
    writer = EventWriter(outbox, topics.events, event_fields(clock, device_id=cfg.device.id,
                                                             precinct=cfg.device.precinct, boot_id=boot_id),
                         listeners=[count], memory=memory, messenger=uplink, reserve=reserve,
                         damage_sources=damage_sources(outbox, found_damaged), faults=faults)
    selftest_requests = SelftestRequests()
    runner = EffectRunner(writer=writer, light=hardware.light, clock=clock, topics=topics,
                          device_id=cfg.device.id, precinct=cfg.device.precinct, messenger=uplink,
                          capturer=capture, buzzer=buzzer, indicator=hardware.status_led,
                          pin_checker=pin_checker, lockouts=lockouts, command_ids=command_ids,
                          selftester=selftest_requests.ask)
    closers.add("rejection log", runner.flush_logs)
    loop = CoreLoop(state, runner, clock=clock, inbox=inbox)
    closers.add("core loop", loop.stop)
    selftest = Selftest(selftest_checks(cfg, hardware=hardware, buzzer=buzzer, loop=loop, capture=capture,
                                        uplink=uplink, outbox=outbox, writer=writer, clock=clock),
                        record=loop.submit, requests=selftest_requests)
    closers.add("selftest", selftest.close)
    hardware.light.play(state.light)  # a resumed alarm shows at once, before anything starts
    if state.sound is not None:
        buzzer.play(state.sound)
    hardware.status_led.show(uplink.view()["state"])
    telemetry = telemetry_timer(cfg, clock=clock, started=started, core=loop,
                                storage_fault=writer.storage_fault, in_memory=lambda: writer.pending,
                                outbox=outbox, uplink=uplink, light=hardware.light, topic=topics.telemetry)
    closers.add("telemetry", telemetry.close)
    static = {"device_id": cfg.device.id, "precinct": cfg.device.precinct, "hardware": cfg.device.hardware,
              "version": __version__, "boot_id": boot_id, "config": cfg.source, "state_dir": str(state_dir)}
    handlers = ControlHandlers(loop, runner, hardware, outbox, static=static, link=uplink.view,
                               capture_parts=capture.parts, selftest=selftest.run, clock=clock)
    control = ControlServer(cfg.control.socket, handlers.table(), max_clients=cfg.control.max_clients,
                            idle_timeout=cfg.control.idle_timeout)
    closers.add("control socket", control.close)
    return Kiosk(config=cfg, clock=clock, boot_id=boot_id, started=started, outbox=outbox, hardware=hardware,
                 uplink=uplink, storage_watch=storage_watch, pin_checker=pin_checker, clock_jobs=clock_jobs,
                 evidence=evidence, capture=capture, writer=writer, runner=runner, loop=loop,
                 selftest=selftest, telemetry=telemetry, control=control)


def selftest_checks(cfg: Config, *, hardware: Hardware, buzzer: checks.Buzzer, loop: CoreLoop,
                    capture: CaptureService, uplink: Link, outbox: Outbox, writer: EventWriter,
                    clock: Clock) -> list[tuple[str, CheckFn]]:
    """Each part's check bound to that part, in the order a technician reads them."""
    tonal_loop = hardware.buzzer is not None and cfg.buzzer.tonal and cfg.device.hardware == "pi"
    return [
        ("light box", partial(checks.light, hardware.light, loop)),
        ("panic button", partial(checks.button, loop)),
        ("microphone", partial(checks.microphone, capture.parts, enabled=cfg.microphone.enabled,
                               buzzer=buzzer, tone_hz=SELFTEST_HZ if tonal_loop else None)),
        ("camera", partial(checks.camera, capture.parts, timeout=cfg.camera.timeout)),
        ("keypad", partial(checks.keypad, hardware.keypad)),
        ("broker", partial(checks.broker, uplink, url=cfg.broker.url)),
        ("disk", partial(checks.disk, cfg.device.state_dir)),
        ("clock", partial(checks.clock, clock, simulated=cfg.device.hardware == "sim")),
        ("outbox", partial(checks.outbox, outbox, offline=not cfg.broker.url)),
        ("storage", partial(checks.storage, writer.storage_fault)),
    ]
