"""`safehouse run`: the kiosk's life cycle — build it, start it, run until SIGTERM/SIGINT, stop it.

Everything is built by the assembly root (device/runtime/assembly.py). Start-up order follows
what a citizen needs first: the outbox (so nothing is accepted that cannot be recorded, and an
alarm left open by a crash is resumed), the hardware (the sign lights up), the core loop, the
uplink, then the control socket; READY=1 goes to systemd last. Shutdown runs the assembly's
``SHUTDOWN_ORDER`` and finishes well inside systemd's stop timeout. It says "stopped cleanly"
and exits 0 only when every accepted event is on disk or acknowledged by the broker; otherwise
it names what it could not keep and exits ``EXIT_UNSETTLED``.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from types import FrameType
from typing import Any

from safehouse.device import __version__
from safehouse.device.core.clock import Clock, SimClock, SystemClock
from safehouse.device.runtime.assembly import Closers, Kiosk, assemble
from safehouse.device.runtime.config import Config
from safehouse.device.runtime.effect_runner import EffectRunner
from safehouse.device.runtime.hardware import Hardware
from safehouse.device.runtime.loop import CoreLoop
from safehouse.device.runtime.storage_recovery import settle_alarms
from safehouse.device.runtime.storage_watch import StorageWatch
from safehouse.services.capture import CaptureService
from safehouse.services.evidence import EvidenceStore
from safehouse.services.outbox import Outbox
from safehouse.services.sdnotify import Watchdog, notify, watchdog_interval

_LOG = logging.getLogger(__name__)
SWITCH_INTERVAL = 0.001
SIM_CLOCK_FILE = "sim-clock-offset"  # sim only: the simulated wall clock's offset (`simulate clock`)
EXIT_UNSETTLED = 1  # stopped with accepted events neither on disk nor with the broker: a failed stop


class Daemon:
    """The running kiosk; ``start()`` then ``wait()``/``stop()``, or use ``run()``.

    The parts tests and benches reach for are read-only properties of the assembled ``Kiosk``.
    """

    def __init__(self, config: Config, *, clock: Clock | None = None, pin_factory: Any = None) -> None:
        self.config = config
        self.clock = clock or (SimClock(config.device.state_dir / SIM_CLOCK_FILE)
                               if config.device.hardware == "sim" else SystemClock())
        self.stopping = threading.Event()
        self._closers = Closers()
        try:
            self.kiosk: Kiosk = assemble(config, self.clock, pin_factory=pin_factory, closers=self._closers)
        except BaseException:
            self.close()
            raise

    @property
    def hardware(self) -> Hardware:
        return self.kiosk.hardware

    @property
    def loop(self) -> CoreLoop:
        return self.kiosk.loop

    @property
    def runner(self) -> EffectRunner:
        return self.kiosk.runner

    @property
    def outbox(self) -> Outbox:
        return self.kiosk.outbox

    @property
    def capture(self) -> CaptureService:
        return self.kiosk.capture

    @property
    def evidence(self) -> EvidenceStore:
        return self.kiosk.evidence

    @property
    def storage_watch(self) -> StorageWatch:
        return self.kiosk.storage_watch

    def link(self) -> dict[str, Any]:
        """The uplink's state; without a broker URL the kiosk is offline by design ("disabled")."""
        return self.kiosk.uplink.view()

    def start(self, *, watch_storage: bool = True) -> None:
        """``watch_storage=False``: `run()` starts the storage thread itself, after READY=1."""
        k = self.kiosk
        k.capture.start()
        k.pin_checker.start()
        k.clock_jobs.start()
        k.selftest.start()
        # Every thread here waits on I/O; a short GIL switch interval (default 5 ms) bounds how
        # long an alarm's next hop (core → uplink → socket) can wait behind a busy thread.
        sys.setswitchinterval(SWITCH_INTERVAL)
        k.loop.start()
        k.uplink.start()
        k.telemetry.start()
        k.control.start()
        if watch_storage:
            k.storage_watch.start()
        _LOG.info("safehouse %s running: device %s, precinct %s, hardware %s, control %s, last seq %d",
                  __version__, self.config.device.id, self.config.device.precinct,
                  self.config.device.hardware, self.config.control.socket, k.outbox.last_seq)

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        """Stop everything in ``SHUTDOWN_ORDER``; safe to call more than once."""
        self._closers.close()

    def selftest(self, source: str) -> list[dict[str, Any]]:
        """Run every check now (on the caller's thread) and record a selftest event (602/608)."""
        return self.kiosk.selftest.run(source)

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
            self._closers.add("watchdog", watchdog.close)
        unsettled: list[str] = []
        try:
            self.start(watch_storage=False)
            # drivers, outbox (or memory, storage failing: STATUS names the fault), socket: all up
            notify(f"READY=1\nSTATUS={self.systemd_status()}")
            self.storage_watch.start()  # a salvage of a damaged outbox runs after READY, never before
            if watchdog is not None:
                watchdog.start()
            self.stopping.wait()  # a signal's handler runs here (lock waits are interruptible)
            _LOG.info("stopping")
            notify("STOPPING=1")
            # an event only in memory: one more write; an alarm: wait (bounded) for its PUBACK
            unsettled = settle_alarms(self.kiosk.writer, self.loop.submit)
        finally:
            self.close()
            for sig, handler in previous.items():
                with contextlib.suppress(ValueError, TypeError):
                    signal.signal(sig, handler)
        if unsettled:  # never "stopped cleanly" nor exit 0 then: systemd shows the unit failed
            _LOG.critical("stopped WITHOUT %d accepted event(s) %s: neither written to disk nor "
                          "acknowledged by the broker", len(unsettled), ", ".join(unsettled[:20]))
            return EXIT_UNSETTLED
        _LOG.info("stopped cleanly")
        return 0

    def _on_hangup(self, _signum: int, _frame: FrameType | None) -> None:
        _LOG.info("SIGHUP: re-reading the volunteers file")
        self.kiosk.pin_checker.reload()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        _LOG.info("received %s", signal.Signals(signum).name)
        self.stop()
