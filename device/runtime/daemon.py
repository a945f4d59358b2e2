"""`safehouse run`: build the kiosk from config, run it until SIGTERM/SIGINT, shut down cleanly.

Start-up order follows what a citizen needs first: the outbox (so nothing is accepted that
cannot be recorded, and an alarm left open by a crash is resumed), the hardware (the sign
lights up), the core loop, the uplink, then the control socket; READY=1 goes to systemd last.
Shutdown runs in reverse and finishes well inside systemd's stop timeout.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from types import FrameType
from typing import Any

from safehouse.device import __version__
from safehouse.device.core.alarm import light_for, sound_for
from safehouse.device.core.clock import Clock, SimClock, SystemClock, read_boot_id
from safehouse.device.core.errors import EventLogError
from safehouse.device.core.inputs import SelftestDone
from safehouse.device.core.recovery import recover_alarm
from safehouse.device.core.state import CoreState, Policy, initial_state
from safehouse.device.runtime.config import Config
from safehouse.device.runtime.control_handlers import Commands
from safehouse.device.runtime.effect_runner import EffectRunner
from safehouse.device.runtime.evidence_wiring import MB, build_capture, evidence_store
from safehouse.device.runtime.hardware import Hardware
from safehouse.device.runtime.loop import CoreLoop
from safehouse.device.runtime.selftest import as_dicts, run_selftest
from safehouse.device.runtime.storage_wiring import free_reserve_for_outbox, settle_alarms, wire_storage
from safehouse.device.runtime.wiring import build_uplink, config_digest, telemetry_timer
from safehouse.services.command_ids import CommandIds
from safehouse.services.control import ControlServer
from safehouse.services.lockout_store import LockoutStore
from safehouse.services.outbox import Outbox
from safehouse.services.pin_check import PinChecker
from safehouse.services.reserve import SpaceReserve
from safehouse.services.schedule import ClockJobs
from safehouse.services.sdnotify import Watchdog, notify, watchdog_interval
from safehouse.services.stats_open import open_stats
from safehouse.services.topics import Topics
from safehouse.services.uplink import Uplink
from safehouse.services.volunteers import VolunteerRegistry

_LOG = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.001
RECOVERY_WINDOW = 500  # events looked back through for an alarm left open


def policy_from(config: Config) -> Policy:
    return Policy(
        ack_timeout=config.alarm.ack_timeout,
        stuck_after=config.button.stuck_after,
        trigger=config.button.trigger,
        hold_seconds=config.button.hold_seconds,
        entry_timeout=config.keypad.entry_timeout,
        command_freshness=config.commands.freshness,
        neighbor_seconds=config.alliance.show_seconds,
        device_id=config.device.id,
        escalate_unstaffed=config.alarm.escalate_unstaffed,
        lockout_after=config.keypad.lockout_after,
        lockout_seconds=config.keypad.lockout_seconds,
        lockout_max_seconds=config.keypad.lockout_max_seconds,
        rollcall_window=config.keypad.rollcall_window,
    )


SIM_CLOCK_FILE = "sim-clock-offset"  # sim only: the simulated wall clock's offset (`simulate clock`)


class Daemon:
    """The running kiosk; ``start()`` then ``wait()``/``stop()``, or use ``run()``."""

    def __init__(self, config: Config, *, clock: Clock | None = None, pin_factory: Any = None) -> None:
        self.config = config
        self.clock = clock or (SimClock(config.device.state_dir / SIM_CLOCK_FILE)
                               if config.device.hardware == "sim" else SystemClock())
        self.boot_id = read_boot_id()
        self.stopping = threading.Event()
        self._closers: list[Callable[[], None]] = []
        try:
            self._build(pin_factory)
        except BaseException:
            self.close()
            raise

    def _build(self, pin_factory: Any) -> None:
        cfg = self.config
        self.started = self.clock.mono()
        self.topics = Topics(cfg.device.precinct, cfg.device.id, cfg.device.alliance)
        # A failing state partition never stops the kiosk: see device/runtime/storage_wiring.py.
        self.outbox = Outbox(cfg.device.state_dir, telemetry_keep=cfg.outbox.telemetry_keep,
                             events_cap=cfg.outbox.events_cap,
                             delivered_retention_h=cfg.outbox.delivered_retention, clock=self.clock.wall,
                             recover=True, lease_dirs=[cfg.control.socket.parent])
        self._closers.append(self.outbox.close)
        self.reserve = SpaceReserve(cfg.device.state_dir, int(cfg.outbox.alarm_reserve_mb * MB))
        free_reserve_for_outbox(self.outbox, self.reserve)
        self.loop: CoreLoop
        self.hardware = Hardware(cfg, lambda inp: self.loop.put(inp), pin_factory=pin_factory,
                                 wall=self.clock.wall)
        self._closers.append(self.hardware.close)
        self.uplink: Uplink | None = build_uplink(self, digest=config_digest(cfg))
        self.runner = EffectRunner(light=self.hardware.light, sink=self.outbox, clock=self.clock,
                                   device_id=cfg.device.id, precinct=cfg.device.precinct,
                                   boot_id=self.boot_id, topics=self.topics, messenger=self.uplink)
        self._closers.append(self.runner.flush_logs)  # run late in the shutdown: after the loop
        self.stats, stats_damage, self.stats_fault = open_stats(cfg.device.state_dir, clock=self.clock.wall)
        self._closers.append(self.stats.close)
        self.storage_watch = wire_storage(self, stats_damage)
        self._closers.append(self.storage_watch.close)
        self.runner.listeners.append(lambda e: self.stats.record(e.type, e.data, test=e.test))
        try:
            self.command_ids = CommandIds(cfg.device.state_dir, clock=self.clock.wall)
        except EventLogError as exc:  # storage failing: kept beside the control socket for this boot
            _LOG.critical("%s; command ids kept in %s until storage returns", exc, cfg.control.socket.parent)
            self.command_ids = CommandIds(cfg.control.socket.parent, clock=self.clock.wall)
            self.runner.writer.other_faults["command ids"] = f"unavailable: {exc}"
        self._closers.append(self.command_ids.close)
        self.runner.command_ids = self.command_ids
        state = initial_state(policy_from(cfg), on_duty=frozenset(self.stats.on_duty()))
        state = replace(state, seen_commands=tuple(self.command_ids.live()))  # a restart forgets no id
        state = self._recover(state)
        self.lockouts = LockoutStore(cfg.device.state_dir, clock=self.clock, boot_id=self.boot_id)
        state = replace(state, keypad=self.lockouts.restore(state.keypad))  # a restart keeps a lockout
        self.runner.lockout_store = self.lockouts
        self.loop = CoreLoop(state, self.runner, clock=self.clock)
        self._closers.append(self.loop.stop)
        self.pin_checker = PinChecker(lambda: VolunteerRegistry.load(cfg.keypad.volunteers), self.loop.put)
        self._closers.append(self.pin_checker.close)
        self.clock_jobs = ClockJobs(self.stats, self.loop.put, rollcall_times=cfg.keypad.rollcall_times,
                                   clock=self.clock.wall)
        self._closers.append(self.clock_jobs.close)
        self.runner.buzzer = self.hardware.buzzer
        self.runner.indicator = self.hardware.status_led
        self.runner.pin_checker = self.pin_checker
        self.reserve.arm()
        self.runner.reserve = self.reserve
        self.runner.selftester = self.selftest_in_background
        self.evidence = evidence_store(self)
        self.capture = build_capture(self)
        self._closers.append(self.capture.close)
        self.runner.capturer = self.capture
        if self.uplink is not None:
            self.uplink.on_sent = self.capture.alarm_sent
        self.hardware.light.play(state.light)
        if state.sound is not None and self.hardware.buzzer is not None:
            self.hardware.buzzer.play(state.sound)
        self.hardware.status_led.show(self.link()["state"])
        if self.uplink is not None:
            self._closers.append(self.uplink.close)  # closed before the loop: says offline "shutdown"
        self.telemetry = telemetry_timer(self)
        self._closers.append(self.telemetry.close)
        static = {"device_id": cfg.device.id, "precinct": cfg.device.precinct,
                  "hardware": cfg.device.hardware, "version": __version__, "boot_id": self.boot_id,
                  "config": cfg.source, "state_dir": str(cfg.device.state_dir)}
        commands = Commands(self.loop, self.runner, self.hardware, static, self.link, self.outbox,
                            self.capture.parts, self.selftest, clock=self.clock)
        self.control = ControlServer(cfg.control.socket, commands.table(),
                                     max_clients=cfg.control.max_clients,
                                     idle_timeout=cfg.control.idle_timeout)
        self._closers.append(self.control.close)

    def _recover(self, state: CoreState) -> CoreState:
        """Resume an alarm the previous run left open (see device/core/recovery.py)."""
        try:
            recent = self.outbox.events(since_seq=max(0, self.outbox.last_seq - RECOVERY_WINDOW))
        except (EventLogError, ValueError) as exc:  # storage failing or garbled: start anyway
            _LOG.error("cannot look for an alarm left open by the previous run: %s", exc)
            return state
        alarm = recover_alarm(recent, boot_id=self.boot_id, mono=self.clock.mono(), wall=self.clock.wall(),
                              ack_timeout=self.config.alarm.ack_timeout)
        if alarm is None:
            return state
        _LOG.warning("resuming alarm %s (%s) left open by the previous run", alarm.event_id,
                     alarm.phase.value)
        resumed = replace(state, alarm=alarm)
        return replace(resumed, light=light_for(resumed), sound=sound_for(resumed))

    def link(self) -> dict[str, Any]:
        """The uplink's state; without a broker URL the kiosk is offline by design."""
        if self.uplink is None:
            return {"state": "disabled", "broker": None}
        return self.uplink.view()

    def start(self, *, watch_storage: bool = True) -> None:
        """``watch_storage=False``: `run()` starts the storage thread itself, after READY=1."""
        self.capture.start()
        self.pin_checker.start()
        self.clock_jobs.start()
        # Every thread here waits on I/O; a short GIL switch interval (default 5 ms) bounds how
        # long an alarm's next hop (core → uplink → socket) can wait behind a busy thread.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.loop.start()
        if self.uplink is not None:
            self.uplink.start()
        self.telemetry.start()
        self.control.start()
        if watch_storage:
            self.storage_watch.start()
        _LOG.info("safehouse %s running: device %s, precinct %s, hardware %s, control %s, last seq %d",
                  __version__, self.config.device.id, self.config.device.precinct,
                  self.config.device.hardware, self.config.control.socket, self.outbox.last_seq)

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Stop everything in reverse order of start; safe to call more than once."""
        while self._closers:
            closer = self._closers.pop()
            try:
                closer()
            except Exception:
                _LOG.exception("shutdown step %r failed", closer)

    def selftest(self, source: str) -> list[dict[str, Any]]:
        """Run every check now (on the caller's thread) and record a selftest event (602/608)."""
        checks = as_dicts(run_selftest(self))
        self.loop.submit(SelftestDone(tuple(checks), source), 5.0)
        return checks

    def selftest_in_background(self, source: str) -> None:
        threading.Thread(target=self.selftest, args=(source,), name="selftest", daemon=True).start()

    def systemd_status(self) -> str:
        """One line for `systemctl status`: the alarm and the link."""
        alarm = self.loop.state.alarm
        fault = self.runner.storage_fault()
        return (f"{'STORAGE FAULT (' + fault + '), running from memory; ' if fault else ''}"
                f"alarm {alarm.phase.value if alarm else 'idle'}, light {self.hardware.light.pattern}, "
                f"link {self.link()['state']}, last seq {self.outbox.last_seq}")

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; returns the process exit status."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)
        interval = watchdog_interval()
        watchdog = None
        if interval is not None:
            self.loop.idle_wake = min(self.loop.idle_wake, interval / 2)
            watchdog = Watchdog(interval, self.loop.heartbeat_age, self.systemd_status)
            self._closers.append(watchdog.close)
        unsettled: list[str] = []
        try:
            self.start(watch_storage=False)
            # drivers, outbox (or memory, storage failing: STATUS names the fault), socket: all up
            notify(f"READY=1\nSTATUS={self.systemd_status()}")
            self.storage_watch.start()  # a salvage of a damaged outbox runs after READY, never before
            if watchdog is not None:
                watchdog.start()
            while not self.stopping.wait(1.0):
                pass
            _LOG.info("stopping")
            notify("STOPPING=1")
            unsettled = settle_alarms(self)  # an alarm only in memory: wait (bounded) for its PUBACK
        finally:
            self.close()
            for sig, handler in previous.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, handler)
        if unsettled:
            _LOG.critical("stopped WITHOUT alarm(s) %s: neither written to disk nor acknowledged by the "
                          "broker", ", ".join(unsettled))
        else:
            _LOG.info("stopped cleanly")
        return 0

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        _LOG.info("SIGHUP: re-reading the volunteers file")
        self.pin_checker.reload()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        _LOG.info("received %s", signal.Signals(signum).name)
        self.stop()
