"""The technician's link LED inside the enclosure.

The public light box never admits the kiosk is offline (citizens must still press the
button: the alarm works locally and is queued), so the uplink state goes to this small LED
that only someone who opened the case can see.

The module is the whole part: it has no settings of its own (its pin is gpio.status_led), so
``build()`` is all the registry needs. gpiozero is imported only when a StatusLed opens its
pin, so loading the config imports no driver library.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError

_LOG = logging.getLogger(__name__)


def _steady(on: bool) -> Callable[[Any], None]:
    return lambda led: led.on() if on else led.off()


def _blink(on_time: float, off_time: float) -> Callable[[Any], None]:
    # gpiozero's blink thread sleeps on an Event between edges: no polling.
    return lambda led: led.blink(on_time=on_time, off_time=off_time, background=True)


_SHOWS: Mapping[str, Callable[[Any], None]] = MappingProxyType(
    {
        "online": _steady(True),
        "connecting": _blink(0.125, 0.125),  # 4 Hz: trying right now
        "offline": _blink(0.5, 1.5),  # slow: waiting for the next retry
        "disabled": _steady(False),  # no broker configured: nothing to report
    }
)

LINKS = tuple(_SHOWS)
_ROLLCALL = _blink(0.05, 0.45)  # short flashes twice a second: "answer the roll-call" (PIN*8#)


class StatusLed(Closing):
    """Shows the MQTT link state as steady, fast-blink, slow-blink or off."""

    def __init__(self, pin: int, *, pin_factory: Any = None) -> None:
        self._pin = pin
        self._lock = threading.Lock()
        self._link = "disabled"
        self._rollcall = False
        self._closed = False
        # gpiozero (and pins, which imports it) only here, where the pin opens.
        from gpiozero import LED

        from safehouse.drivers.pins import opening

        with opening("status LED", pin):
            self._led: Any = LED(pin, pin_factory=pin_factory)

    def __repr__(self) -> str:
        return f"<StatusLed GPIO{self._pin} {self._link!r}>"

    @property
    def link(self) -> str:
        return self._link

    def show(self, link: str) -> None:
        """Display ``link``; showing the state already shown keeps the blink phase."""
        action = _SHOWS.get(link)
        if action is None:
            raise ValueError(f"unknown link state {link!r}; valid states: {', '.join(LINKS)}")
        with self._lock:
            if self._closed:
                raise HardwareError(f"{self!r} is closed; build a new StatusLed to use the pin")
            if link == self._link:
                return
            if not self._rollcall:  # a roll-call in progress keeps the LED until answered
                action(self._led)
            self._link = link
        _LOG.debug("status LED shows %s", link)

    @property
    def is_rollcall(self) -> bool:
        return self._rollcall

    def rollcall(self, on: bool) -> None:
        """Flash for the daily roll-call until it is answered or missed, then show the link."""
        with self._lock:
            if self._closed or on == self._rollcall:
                return
            self._rollcall = on
            (_ROLLCALL if on else _SHOWS[self._link])(self._led)

    def close(self) -> None:
        """Stop any blink and release the pin; safe to repeat."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._led.off()  # stops a blink too; a released pin may keep its last level
            finally:
                self._led.close()


def build(pin: int, *, pin_factory: Any) -> StatusLed:
    """Open the status LED on ``pin``."""
    return StatusLed(pin, pin_factory=pin_factory)
