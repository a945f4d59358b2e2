"""A digital input debounced in our own thread, identically on the Pi and in simulation.

gpiozero's MockFactory ignores ``bounce_time`` and lgpio's kernel debounce can swallow a
short press, so neither can be trusted with the panic button. Here the gpiozero callback
only notes that an edge happened; a debouncer thread waits until the line has been quiet for
``debounce_ms``, then reads the level and reports a change only if it differs from the last
one reported. Whatever the contacts do, the owner sees clean, alternating events.

gpiozero is imported only when an input opens its pin, so the modules of the parts built on
this one (``panic_button``) load without it, and so does the config.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)

Callback = Callable[[], object]


class DebouncedInput(Closing):
    """A contact on ``pin``; by default wired to GND with the internal pull-up (active low).

    ``active_state`` names the pin level that counts as active when that differs from what
    the pull implies (gpiozero only allows it for floating pins; here it works with any pull,
    e.g. a lid switch that holds the line low while the enclosure is shut).

    An input found active at start-up is reported once, to the first ``when_activated``
    handler, even one assigned after the initial debounce: a button jammed at boot must be
    noticed however the owner orders its set-up.
    """

    NAME = "input"  # subclasses: what the owner calls it, for logs and errors
    ACTIVE_STATE: bool | None = None  # subclasses: the level that means "active", if not the pull's

    def __init__(
        self,
        pin: int,
        *,
        pull_up: bool | None = True,
        active_state: bool | None = None,
        debounce_ms: float = 20,
        pin_factory: Any = None,
        name: str | None = None,
    ) -> None:
        name = name or self.NAME
        active_state = self.ACTIVE_STATE if active_state is None else active_state
        if debounce_ms < 0:
            raise ValueError(f"{name} on GPIO{pin}: debounce_ms must be >= 0, got {debounce_ms}")
        if pull_up is None and active_state is None:
            raise ValueError(
                f"{name} on GPIO{pin}: a floating pin (pull_up=None) needs active_state"
            )
        self._pin = pin
        self._name = name
        self._debounce = debounce_ms / 1000.0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._worker = Worker(self._run, name=f"debounce-{name}-{pin}", wake=self._wake.set)
        self._when_activated: Callback | None = None
        self._when_deactivated: Callback | None = None
        self._level = False
        self._boot_pending = True
        self._edges = 0
        self._changes = 0
        self._last_edge = time.monotonic()
        # gpiozero (and pins, which imports it) only here, where the pin opens.
        from gpiozero import DigitalInputDevice

        from safehouse.drivers.pins import opening

        with opening(name, pin):
            self._device: Any = DigitalInputDevice(
                pin,
                pull_up=pull_up,
                active_state=active_state if pull_up is None else None,
                bounce_time=None,
                pin_factory=pin_factory,
            )
        # gpiozero derives the active level from the pull; flip it where the owner said otherwise.
        self._invert = pull_up is not None and active_state is not None and active_state == pull_up
        try:
            self._device.when_activated = self._on_edge
            self._device.when_deactivated = self._on_edge
            self._wake.set()  # confirm the start-up level like any other edge
            self._worker.start()
        except BaseException:
            self._device.close()
            raise

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._name!r} GPIO{self._pin} active={self._level}>"

    @property
    def is_active(self) -> bool:
        """The last debounced level (False until the start-up level is confirmed)."""
        return self._level

    @property
    def edges(self) -> int:
        """Raw edges seen, bounces included: a count far above ``changes`` means bad contacts."""
        return self._edges

    @property
    def changes(self) -> int:
        """Debounced level changes reported."""
        return self._changes

    @property
    def when_activated(self) -> Callback | None:
        return self._when_activated

    @when_activated.setter
    def when_activated(self, fn: Callback | None) -> None:
        self._when_activated = fn
        if fn is not None and self._boot_pending:
            self._wake.set()  # deliver a start-up activation nobody was listening for

    @property
    def when_deactivated(self) -> Callback | None:
        return self._when_deactivated

    @when_deactivated.setter
    def when_deactivated(self, fn: Callback | None) -> None:
        self._when_deactivated = fn

    def close(self) -> None:
        """Stop the debouncer and release the pin; safe to repeat."""
        if self._worker.request_stop():
            self._worker.stop()  # a stuck debouncer is logged, not waited for
            self._device.close()

    def _on_edge(self) -> None:
        # Runs on gpiozero's callback thread: note the edge and leave.
        self._last_edge = time.monotonic()
        self._edges += 1
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._worker.stopping.is_set():
                return
            self._wake.clear()
            # Wait until the line has been quiet for the whole debounce window.
            while (remaining := self._last_edge + self._debounce - time.monotonic()) > 0:
                if self._worker.stopping.wait(remaining):
                    return
            try:
                level = bool(self._device.is_active) != self._invert
            except Exception:
                _LOG.exception("%r: reading the pin failed", self)
                continue
            self._report(level)

    def _report(self, level: bool) -> None:
        with self._lock:
            changed = level != self._level
            self._level = level
            if changed:
                self._changes += 1
            fn = self._when_activated if level else self._when_deactivated
            deliver = changed or (level and self._boot_pending)
            if not level or (deliver and fn is not None):
                self._boot_pending = False
        if deliver and fn is not None:
            try:
                fn()
            except Exception:
                which = "when_activated" if level else "when_deactivated"
                _LOG.exception("%r: the %s handler raised; input keeps running", self, which)
