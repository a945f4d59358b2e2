"""The volunteers' 12-key serial keypad (0-9 * #), read by one thread that survives unplugging.

Keypads differ: some send one byte per key, some a whole line ("1234#\\r\\n"). Both arrive
here as bytes, and every byte that is a key becomes one ``when_key`` call, in order; CR and
LF are separators; a run of other bytes is line noise (or a wrong baud rate) and becomes one
``when_noise(count)`` call, so the core can discard the entry it fell into. Every chunk first
passes the flood guard (drivers/keypad_guard.py): a flood is one ``when_flood(True, ...)``,
nothing of it reaches the core, and ``when_flood(False, ...)`` follows once the line has been
quiet. Reads are at most ``READ_MAX`` bytes, so memory stays bounded whatever the line sends.
Key values are PINs, so nothing here ever logs them: logs carry counts only.

The port is opened with ``exclusive=True`` (pyserial's flock: a second program that also locks
cannot share the keypad's bytes) and marked TIOCEXCL, so a plain open by any program not running
as root (``cat``, ``screen``) is refused with EBUSY too; the mark is taken off before closing,
as a pty keeps it after the last close.
A keypad that is missing at start-up or pulled out later is reported once through
``when_lost``; the reader then retries: every ``reopen_min`` seconds while the device node is
absent (USB hotplug: it appears the moment the keypad is plugged in), with exponential backoff
while it is present but will not open. ``when_restored`` follows once it is back. The kiosk
starts and raises alarms without its keypad.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import termios
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError
from safehouse.device.core.ratelimit import RateLimitedLog, clip_text
from safehouse.drivers.keypad_guard import KEYS, SEPARATORS, Episode, FloodGuard

_LOG = logging.getLogger(__name__)

__all__ = ["KEYS", "SEPARATORS", "Keypad"]
READ_MAX = 4096  # bytes per read: a flood is judged chunk by chunk, never buffered whole
FLOOD_PAUSE = 0.02  # seconds between reads while a flood is being ignored
_READ_TIMEOUT = 0.1  # seconds a read may block: bounds how long close() waits
_JOIN_SECONDS = 2.0
_INJECT_WAIT = 2.0

KeyCallback = Callable[[str], object]
LostCallback = Callable[[str], object]
RestoredCallback = Callable[[], object]
NoiseCallback = Callable[[int], object]
FloodCallback = Callable[[bool, str, int], object]  # (started, why / how long, bytes discarded)


def _default_factory(*args: Any, **kwargs: Any) -> Any:
    import serial  # lazily: the daemon without a keypad never needs pyserial loaded

    return serial.serial_for_url(*args, **kwargs)


def _exclusive(port: Any, request: int) -> None:
    """TIOCEXCL / TIOCNXCL on a real tty (loop:// and test doubles have no fd)."""
    fd = getattr(port, "fd", None)
    if isinstance(fd, int):
        with contextlib.suppress(OSError):  # an unplugged device's tty: nothing left to mark
            fcntl.ioctl(fd, request)


def _close(port: Any) -> None:
    _exclusive(port, termios.TIOCNXCL)
    port.close()


class Keypad(Closing):
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
        if not 0 < reopen_min <= reopen_max:
            raise ValueError(
                f"keypad on {port}: need 0 < reopen_min <= reopen_max, "
                f"got reopen_min={reopen_min!r} reopen_max={reopen_max!r}"
            )
        self._port_name = port
        self._baud = baud
        self._reopen = (reopen_min, reopen_max)
        self._factory = serial_factory or _default_factory
        self._guard = guard or FloodGuard()
        self._logs = RateLimitedLog(_LOG, burst=3, per=300.0)  # a noisy line must not fill the disk
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._nudge = threading.Event()  # a handler was assigned or close() was called
        self._opened = threading.Event()
        self._closed = False
        self._port: Any = None
        self._keys = 0
        self._rejected = 0
        self._loss: str | None = None  # why the port is down, while it is
        self._reported_down = False  # the owner was told (when_lost) and not yet restored
        self._when_key: KeyCallback | None = None
        self._when_lost: LostCallback | None = None
        self._when_restored: RestoredCallback | None = None
        self.when_noise: NoiseCallback | None = None
        self.when_flood: FloodCallback | None = None
        self._thread = threading.Thread(target=self._run, name=f"keypad-{port}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<Keypad {self._port_name} {state}>"

    @property
    def is_connected(self) -> bool:
        return self._opened.is_set()

    @property
    def keys(self) -> int:
        """Key bytes delivered (or offered to a missing handler) since start."""
        return self._keys

    @property
    def rejected_bytes(self) -> int:
        """Bytes that were neither a key nor CR/LF, outside floods: noise, or the wrong baud rate."""
        return self._rejected

    @property
    def discarded_bytes(self) -> int:
        """Bytes thrown away unread by the flood guard (floods and the quiet wait after them)."""
        return self._guard.discarded

    @property
    def flooding(self) -> bool:
        """A flood episode is under way: input is ignored until the line is quiet."""
        return self._guard.episode is not None

    @property
    def when_key(self) -> KeyCallback | None:
        return self._when_key

    @when_key.setter
    def when_key(self, fn: KeyCallback | None) -> None:
        self._when_key = fn

    @property
    def when_lost(self) -> LostCallback | None:
        return self._when_lost

    @when_lost.setter
    def when_lost(self, fn: LostCallback | None) -> None:
        self._when_lost = fn
        self._nudge.set()  # deliver a loss nobody was listening for yet

    @property
    def when_restored(self) -> RestoredCallback | None:
        return self._when_restored

    @when_restored.setter
    def when_restored(self, fn: RestoredCallback | None) -> None:
        self._when_restored = fn
        self._nudge.set()

    def inject(self, data: bytes) -> None:
        """Feed ``data`` to the simulated keypad; the real reader path decodes it."""
        if not self._port_name.startswith("loop://"):
            raise HardwareError(
                f"keys can be injected only into the simulated keypad (port loop://), "
                f"not into {self._port_name}"
            )
        if self._closed:
            raise HardwareError(f"{self!r} is closed; build a new Keypad to inject keys")
        if not self._opened.wait(_INJECT_WAIT):
            raise HardwareError(f"the simulated keypad {self._port_name} did not open")
        with self._lock:
            port = self._port
        if port is None:
            raise HardwareError(f"the simulated keypad {self._port_name} is not open")
        port.write(bytes(data))

    def close(self) -> None:
        """Stop the reader and close the port; safe to repeat."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping.set()
            self._nudge.set()
            port = self._port
        if port is not None:
            # Wakes a blocked read at once (posix and loop://); the read timeout bounds it anyway.
            with contextlib.suppress(Exception):
                port.cancel_read()
        if self._thread is not threading.current_thread():
            self._thread.join(_JOIN_SECONDS)
            if self._thread.is_alive():
                _LOG.warning("%r: reader did not stop within %.1f s", self, _JOIN_SECONDS)
        self._drop_port()
        self._logs.flush()  # say how many noise lines were left out

    # -- reader thread ---------------------------------------------------------------------

    def _run(self) -> None:
        delay = self._reopen[0]
        while not self._stopping.is_set():
            try:
                port = self._factory(self._port_name, baudrate=self._baud, timeout=_READ_TIMEOUT,
                                     exclusive=True)
            except Exception as exc:
                self._down(exc, opening=True)
                if self._absent():  # unplugged: poll for the node, it appears when plugged in
                    self._sleep(self._reopen[0])
                    continue
                self._sleep(delay)
                delay = min(delay * 2, self._reopen[1])
                continue
            _exclusive(port, termios.TIOCEXCL)
            with self._lock:
                if self._stopping.is_set():
                    _close(port)
                    return
                self._port = port
            self._opened.set()
            delay = self._reopen[0]
            _LOG.info("keypad on %s is open", self._port_name)
            self._loss = None
            self._report()
            try:
                self._read_until_error(port)
            except Exception as exc:
                if self._stopping.is_set():
                    break
                self._down(exc, opening=False)
                self._drop_port()
                self._sleep(delay)
                delay = min(delay * 2, self._reopen[1])
        self._drop_port()

    def _absent(self) -> bool:
        """A device path (not a pyserial URL such as loop://) whose node does not exist."""
        return "://" not in self._port_name and not os.path.exists(self._port_name)

    def _read_until_error(self, port: Any) -> None:
        while not self._stopping.is_set():
            data = port.read(min(port.in_waiting, READ_MAX) or 1)
            if data:
                self._decode(data, time.monotonic())
                if self._guard.episode is not None:
                    # a flood is read slowly (<= 200 KB/s): the rest waits in the kernel at no cost,
                    # and the reader leaves the CPU (and the GIL) to the panic button's path
                    self._stopping.wait(FLOOD_PAUSE)
            ended = self._guard.poll(time.monotonic())
            if ended is not None:
                self._flood_over(ended)
            self._report()

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
        fn = self._when_key
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

    def _down(self, exc: BaseException, *, opening: bool) -> None:
        self._opened.clear()
        first = self._loss is None
        what = "cannot open" if opening else "lost"
        self._loss = f"keypad on {self._port_name} {what}: {type(exc).__name__}: {exc}"
        if first:  # a traceback only for the unexpected: an unplug is an OSError
            _LOG.warning("%s; retrying every %.1f-%.1f s", self._loss, *self._reopen,
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
        while (remaining := deadline - time.monotonic()) > 0 and not self._stopping.is_set():
            if self._nudge.wait(remaining):
                self._nudge.clear()
                self._report()

    def _drop_port(self) -> None:
        self._opened.clear()
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                _close(port)
            except Exception:
                _LOG.debug("keypad on %s: closing the port failed", self._port_name, exc_info=True)
