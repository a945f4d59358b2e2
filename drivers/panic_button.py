"""The kiosk's contact inputs under the names their owners think in.

All three are DebouncedInput; the subclasses only rename events and state so the daemon
reads ``button.when_pressed`` and ``tamper.is_open`` instead of "activated" and "active",
and carry the wiring default that makes a cut wire look like the alarming state.
"""

from __future__ import annotations

from safehouse.drivers.debounce import Callback, DebouncedInput


class PanicButton(DebouncedInput):
    """The citizen's button, between the pin and GND with the pull-up: pressed = low."""

    NAME = "panic button"

    @property
    def is_pressed(self) -> bool:
        return self.is_active

    @property
    def when_pressed(self) -> Callback | None:
        return self.when_activated

    @when_pressed.setter
    def when_pressed(self, fn: Callback | None) -> None:
        self.when_activated = fn

    @property
    def when_released(self) -> Callback | None:
        return self.when_deactivated

    @when_released.setter
    def when_released(self, fn: Callback | None) -> None:
        self.when_deactivated = fn


class TamperSwitch(DebouncedInput):
    """The enclosure's lid switch; active = enclosure open.

    Default wiring: a switch to GND that the shut lid holds closed, with the pull-up, so an
    open lid *and* a cut wire both read high = open (tamper is reported, not hidden).
    """

    NAME = "tamper switch"
    ACTIVE_STATE = True

    @property
    def is_open(self) -> bool:
        return self.is_active

    @property
    def when_opened(self) -> Callback | None:
        return self.when_activated

    @when_opened.setter
    def when_opened(self, fn: Callback | None) -> None:
        self.when_activated = fn

    @property
    def when_closed(self) -> Callback | None:
        return self.when_deactivated

    @when_closed.setter
    def when_closed(self, fn: Callback | None) -> None:
        self.when_deactivated = fn


class LampSensor(DebouncedInput):
    """The lamp current sensor; active = current flows, i.e. the light box really lights.

    Default wiring: an open-collector sensor output that pulls the line low while current
    flows, with the pull-up, so a cut wire reads high = not lit (a lamp fault, not a lie).
    """

    NAME = "lamp sensor"

    @property
    def is_lit(self) -> bool:
        return self.is_active

    @property
    def when_lit(self) -> Callback | None:
        return self.when_activated

    @when_lit.setter
    def when_lit(self, fn: Callback | None) -> None:
        self.when_activated = fn

    @property
    def when_unlit(self) -> Callback | None:
        return self.when_deactivated

    @when_unlit.setter
    def when_unlit(self, fn: Callback | None) -> None:
        self.when_deactivated = fn
