"""The keypad part: its [keypad] settings, build(), and the volunteers' 12-key serial keypad (0-9 * #).

The keypad is read by one thread that survives unplugging; the simulated one is the same
reader on pyserial's ``loop://``. pyserial itself is imported only when a port is opened
(drivers/keypad_port.py), so loading the config (every CLI command does) never loads it.

Keypads differ: some send one byte per key, some a whole line ("1234#\\r\\n"). Both arrive
here as bytes, and every byte that is a key becomes one ``when_key`` call, in order; CR and
LF are separators; a run of other bytes is line noise (or a wrong baud rate) and becomes one
``when_noise(count)`` call, so the core can discard the entry it fell into. Every chunk first
passes the flood guard (drivers/keypad_guard.py): a flood is one ``when_flood(True, ...)``,
nothing of it reaches the core, and ``when_flood(False, ...)`` follows once the line has been
quiet. Reads are at most ``READ_MAX`` bytes, so memory stays bounded whatever the line sends.
Key values are PINs, so nothing here ever logs them: logs carry counts only.

The port (opened exclusively, read without a timer while idle) is drivers/keypad_port.py; what
the keypad reports about itself (counters, flooding, its loss/restore handlers) is
drivers/keypad_status.py.
A keypad that is missing at start-up or pulled out later is reported once through
``when_lost``; the reader then retries: every ``reopen_min`` seconds while the device node is
absent (USB hotplug: it appears the moment the keypad is plugged in), with exponential backoff
while it is present but will not open. ``when_restored`` follows once it is back. The kiosk
starts and raises alarms without its keypad.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError
from safehouse.device.core.ratelimit import RateLimitedLog, clip_text
from safehouse.device.core.settings import HHMM, Rule, as_path_or, in_range, one_of, setting
from safehouse.device.core.threads import Worker
from safehouse.drivers.keypad_guard import Episode, FloodGuard
from safehouse.drivers.keypad_port import KeypadPort, set_timeout
from safehouse.drivers.keypad_status import FloodCallback, KeyCallback, KeypadStatus, NoiseCallback

_LOG = logging.getLogger(__name__)

__all__ = ["Keypad", "KeypadSettings", "build", "port_of"]
READ_MAX = 4096  # bytes per read: a flood is judged chunk by chunk, never buffered whole
FLOOD_PAUSE = 0.02  # seconds between reads while a flood is being ignored
_DUE_TIMEOUT = 0.1  # read timeout while something is due (a flood to end, a handler to ask again)
_INJECT_WAIT = 2.0
_EACH_HHMM = Rule(lambda v: None if all(HHMM.fullmatch(t) for t in v) else "each must be HH:MM",
                  {"items": {"type": "string", "pattern": HHMM.pattern}})


@dataclass(frozen=True)
class KeypadSettings:
    """[keypad]: the volunteers' keypad, their PINs, lockouts and roll-calls."""

    port: str = setting("", "serial port of the keypad ('' = none)")
    baud: int = setting(9600, "keypad baud rate",
                        one_of(1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200))
    entry_timeout: float = setting(10.0, "a partial entry is dropped after this silence (s)",
                                   in_range(1.0, 120.0))
    volunteers: Path = setting("", "volunteers file ('' = volunteers.toml beside this config file)",
                               convert=as_path_or("volunteers.toml"))
    lockout_after: int = setting(5, "wrong PINs before the keypad locks", in_range(2, 50))
    lockout_seconds: float = setting(60.0, "first lockout (s); doubles while wrong PINs continue",
                                     in_range(5.0, 3600.0))
    rollcall_window: float = setting(300.0, "seconds to answer a roll-call with PIN*8#",
                                     in_range(1.0, 3600.0))
    rollcall_times: tuple[str, ...] = setting((), "local times of a daily roll-call, e.g. [\"09:00\"]",
                                              _EACH_HHMM)
    lockout_max_seconds: float = setting(3600.0, "the longest a lockout grows to by doubling (s)",
                                         in_range(5.0, 86400.0))
    flood_keys: int = setting(30, "more keys than this within 1 s is a flood, not a person",
                              in_range(12, 10000))
    flood_entries: int = setting(3, "more entries (#) than this within 1 s is a flood", in_range(1, 100))
    noise_ignore_seconds: float = setting(5.0, "after a flood, keys count again once the line "
                                          "has been quiet this long (s)", in_range(0.5, 300.0))


def port_of(settings: KeypadSettings, *, simulated: bool) -> str:
    """The serial line to open: the configured one; simulated, a ``loop://`` keypad if none."""
    return settings.port or ("loop://" if simulated else "")


def build(settings: KeypadSettings, *, simulated: bool) -> Keypad | None:
    """Open the keypad with its flood guard, or nothing when no port is configured (real hardware)."""
    port = port_of(settings, simulated=simulated)
    if not port:
        return None
    guard = FloodGuard(max_keys=settings.flood_keys, max_entries=settings.flood_entries,
                       ignore_s=settings.noise_ignore_seconds)
    return Keypad(port, baud=settings.baud, guard=guard)


class Keypad(KeypadStatus, Closing):
    """A serial keypad on ``port`` (a device path, or ``loop://`` for the simulated one).

    Handlers run on the reader thread and must return quickly (put an input on the core
    queue). A loss that happens before ``when_lost`` is assigned (a keypad missing at boot)
    is delivered as soon as a handler is assigned; ``when_restored`` only ever follows a
    ``when_lost`` that was delivered.
    """

    def __init__(
        self,
        port: str,
        *,
        baud: int = 9600,
        reopen_min: float = 0.5,
        reopen_max: float = 30.0,
        serial_factory: Callable[..., Any] | None = None,
        guard: FloodGuard | None = None,
    ) -> None:
        if not port:
            raise ValueError("keypad port must name a serial device (e.g. /dev/ttyUSB0) or loop://")
        if baud <= 0:
            raise ValueError(f"keypad on {port}: baud must be > 0, got {baud!r}")
        self._line = KeypadPort(port, baud=baud, reopen=(reopen_min, reopen_max),
                                factory=serial_factory)  # checks the reopen times
        self._port_name = port
        self._baud = baud
        self._guard = guard or FloodGuard()
        self._logs = RateLimitedLog(_LOG, burst=3, per=300.0)  # a noisy line must not fill the disk
        self._nudge = threading.Event()  # a handler was assigned or close() was called
        self._opened = threading.Event()
        self._keys = 0
        self._rejected = 0
        self._loss: str | None = None  # why the port is down, while it is
        self._reported_down = False  # the owner was told (when_lost) and not yet restored
        self.when_key: KeyCallback | None = None
        self._when_lost = None
        self._when_restored = None
        self.when_noise: NoiseCallback | None = None
        self.when_flood: FloodCallback | None = None
        self._worker = Worker(self._run, name=f"keypad-{port}", wake=self._poke)
        self._worker.start()

    def inject(self, data: bytes) -> None:
        """Feed ``data`` to the simulated keypad; the real reader path decodes it."""
        if not self._port_name.startswith("loop://"):
            raise HardwareError(
                f"keys can be injected only into the simulated keypad (port loop://), "
                f"not into {self._port_name}"
            )
        if self._worker.stopping.is_set():
            raise HardwareError(f"{self!r} is closed; build a new Keypad to inject keys")
        if not self._opened.wait(_INJECT_WAIT):
            raise HardwareError(f"the simulated keypad {self._port_name} did not open")
        port = self._line.current
        if port is None:
            raise HardwareError(f"the simulated keypad {self._port_name} is not open")
        port.write(bytes(data))

    def close(self) -> None:
        """Stop the reader and close the port; safe to repeat."""
        if self._worker.request_stop():  # its wake hook ends a blocked read at once
            self._worker.stop()
            self._opened.clear()
            self._line.drop()  # the reader closed it, unless it is stuck
            self._logs.flush()  # say how many noise lines were left out

    def wake(self) -> None:
        """Make the reader look at its port again now, not at the next byte: a simulated cable
        pull (runtime/acceptance_sim.py) patches the port class under a read that has no timeout."""
        self._poke()

    def _poke(self) -> None:
        """Wake the reader (a read blocked with no timeout, or a wait before a reopen)."""
        self._nudge.set()
        self._line.wake()

    # -- reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        self._line.serve(self._worker.stopping, up=self._up, read=self._read_until_error,
                         down=self._down, wait=self._sleep)
        self._opened.clear()

    def _up(self) -> None:
        self._opened.set()
        _LOG.info("keypad on %s is open", self._port_name)
        self._loss = None
        self._report()

    def _read_until_error(self, port: Any) -> None:
        stopping = self._worker.stopping
        while not stopping.is_set():
            set_timeout(port, self._read_timeout())
            data = port.read(min(port.in_waiting, READ_MAX) or 1)
            if data:
                self._decode(data, time.monotonic())
                if self._guard.episode is not None:
                    # a flood is read slowly (<= 200 KB/s): the rest waits in the kernel at no cost,
                    # and the reader leaves the CPU (and the GIL) to the panic button's path
                    stopping.wait(FLOOD_PAUSE)
            ended = self._guard.poll(time.monotonic())
            if ended is not None:
                self._flood_over(ended)
            self._report()

    def _read_timeout(self) -> float | None:
        """None while idle: the read blocks until a byte arrives or ``_poke()`` ends it, so an
        idle keypad never wakes the reader. A timeout only while something is due: a flood
        episode ends once the line has been quiet, a when_restored that raised is asked again."""
        retry = self._reported_down and self._loss is None and self._when_restored is not None
        return _DUE_TIMEOUT if retry or self._guard.episode is not None else None

    def _decode(self, data: bytes, now: float) -> None:
        verdict = self._guard.feed(data, now)
        if verdict.flood is not None:
            self._logs.warning(
                "flood", "keypad on %s: flood (%s); input ignored until the line is quiet for %g s",
                self._port_name, verdict.flood, self._guard.ignore_s)
            self._call("when_flood", self.when_flood, True, verdict.flood, len(data))
        for item in verdict.items:
            if isinstance(item, str):
                self._keys += 1
                self._deliver(item)
                continue
            self._rejected += item
            self._logs.warning(
                "noise", "keypad on %s sent %d byte(s) that are not keys (%d in total); "
                "check the keypad's baud rate (configured %d) and its cable",
                self._port_name, item, self._rejected, self._baud)
            self._call("when_noise", self.when_noise, item)

    def _flood_over(self, episode: Episode) -> None:
        took = f"{time.monotonic() - episode.started:.1f} s"
        self._logs.log(logging.INFO, "quiet", "keypad on %s is quiet again after %s: %d byte(s) discarded",
                       self._port_name, took, episode.first + episode.discarded)
        self._call("when_flood", self.when_flood, False, took, episode.discarded)  # the first: at start

    def _deliver(self, key: str) -> None:
        fn = self.when_key
        if fn is None:
            _LOG.debug("keypad on %s: a key arrived with no when_key handler", self._port_name)
            return
        try:
            fn(key)
        except Exception as exc:
            # Not _LOG.exception: the message may hold the key (KeyError('7')). Type and place only.
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self._logs.log(
                logging.ERROR, "when_key",
                "keypad on %s: the when_key handler raised %s at %s:%s in %s; reader keeps running",
                self._port_name, type(exc).__name__, where.filename, where.lineno, where.name)

    def _down(self, exc: BaseException, opening: bool) -> None:
        self._opened.clear()
        first = self._loss is None
        what = "cannot open" if opening else "lost"
        self._loss = f"keypad on {self._port_name} {what}: {type(exc).__name__}: {exc}"
        if first:  # a traceback only for the unexpected: an unplug is an OSError
            _LOG.warning("%s; retrying every %.1f-%.1f s", self._loss, *self._line.reopen,
                         exc_info=not isinstance(exc, OSError))
        self._report()

    def _report(self) -> None:
        """Tell the owner about a state change not yet reported, if a handler is there."""
        if self._loss is not None and not self._reported_down:
            # a handler that raised (e.g. the daemon's queue not built yet) is asked again later
            self._reported_down = self._call("when_lost", self._when_lost, self._loss)
        elif self._loss is None and self._reported_down:
            self._reported_down = not self._call("when_restored", self._when_restored)
            if not self._reported_down:
                _LOG.info("keypad on %s is back", self._port_name)

    def _call(self, name: str, fn: Callable[..., object] | None, *args: Any) -> bool:
        """Run a handler; False if there is none or it raised (logged, rate-limited)."""
        if fn is None:
            return False
        try:
            fn(*args)
        except Exception as exc:
            self._logs.log(logging.ERROR, name, "keypad on %s: the %s handler raised %s: %s; "
                           "reader keeps running", self._port_name, name, type(exc).__name__,
                           clip_text(str(exc)))
            return False
        return True

    def _sleep(self, seconds: float) -> None:
        """Wait before the next reopen, delivering late-assigned handlers meanwhile."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0 and not self._worker.stopping.is_set():
            if self._nudge.wait(remaining):
                self._nudge.clear()
                self._report()
