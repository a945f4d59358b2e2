"""The kiosk's hardware as one composite, built from config, wired to the core loop.

Callbacks do exactly one thing — put a typed input on the core queue. Building is all or
nothing: if the fifth device fails to open, the four already opened are closed before the
error propagates, so a retry (or systemd's restart) never finds a pin still claimed.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from safehouse.device.core.errors import HardwareError
from safehouse.device.core.inputs import (
    ButtonChanged,
    Input,
    KeypadFlood,
    KeypadLink,
    KeypadNoise,
    KeyPressed,
    LampChanged,
    TamperChanged,
)
from safehouse.device.runtime.config import Config
from safehouse.drivers.buzzer import Buzzer
from safehouse.drivers.keypad import Keypad
from safehouse.drivers.keypad_guard import FloodGuard
from safehouse.drivers.lightbox import LightBox
from safehouse.drivers.panic_button import LampSensor, PanicButton, TamperSwitch
from safehouse.drivers.patterns import BrightnessSchedule
from safehouse.drivers.pins import closed_at_boot, make_pin_factory
from safehouse.drivers.status_led import StatusLed

_LOG = logging.getLogger(__name__)


class Hardware:
    """Light box, status LED, panic button and the optional tamper and lamp inputs."""

    def __init__(self, config: Config, put: Any, *, pin_factory: Any = None,
                 wall: Callable[[], float] = time.time) -> None:
        self.simulated = config.device.hardware == "sim"
        self.pin_factory = pin_factory or make_pin_factory(config.device.hardware)
        self._opened: list[Any] = []
        self._closed = False
        self._gpio = config.gpio
        # The beacon dims by local wall time: the daemon's clock (a sim clock can jump), never a
        # second reading of the system clock.
        self._local_now = lambda: datetime.fromtimestamp(wall())
        try:
            self._build(config, put)
        except BaseException:
            self.close()
            raise

    def _open(self, what: str, build: Any) -> Any:
        try:
            device = build()
        except HardwareError:
            raise
        except Exception as exc:
            raise HardwareError(f"cannot open {what}: {exc}; check the [gpio] section") from exc
        self._opened.append(device)
        return device

    def _build(self, config: Config, put: Any) -> None:
        gpio, light, factory = config.gpio, config.light, self.pin_factory
        if self.simulated:
            # a healthy simulated kiosk: lid shut (switch closed to GND), lamp current flowing
            for pin in (gpio.tamper, gpio.lamp_ok):
                if pin is not None:
                    closed_at_boot(factory, pin)
        schedule = BrightnessSchedule(day=light.day_brightness, night=light.night_brightness,
                                      night_from=light.night_from, night_until=light.night_until)
        self.light: LightBox = self._open(
            f"the light box (gpio.red={gpio.red}, gpio.blue={gpio.blue})",
            lambda: LightBox(gpio.red, gpio.blue, active_high=light.active_high,
                             schedule=schedule, pin_factory=factory,
                             clock=self._local_now))
        self.status_led: StatusLed = self._open(
            f"the status LED (gpio.status_led={gpio.status_led})",
            lambda: StatusLed(gpio.status_led, pin_factory=factory))
        debounce = config.button.debounce_ms
        self.button: PanicButton = self._open(
            f"the panic button (gpio.button={gpio.button})",
            lambda: PanicButton(gpio.button, debounce_ms=debounce, pin_factory=factory))
        _wire(self.button, put, ButtonChanged(True), ButtonChanged(False))
        buzzer = config.buzzer
        if buzzer.enabled:
            enabled = {"click": buzzer.click, "ok": buzzer.ok, "error": buzzer.error,
                       "chime": buzzer.chime, "rollcall": buzzer.rollcall}
            self.buzzer: Buzzer | None = self._open(
                f"the buzzer (gpio.buzzer={gpio.buzzer})",
                lambda: Buzzer(gpio.buzzer, pin_factory=factory, tonal=buzzer.tonal, enabled=enabled))
        else:
            self.buzzer = None
        port = config.keypad.port or ("loop://" if self.simulated else "")
        self.keypad: Keypad | None = None
        if port:
            kp = config.keypad
            guard = FloodGuard(max_keys=kp.flood_keys, max_entries=kp.flood_entries,
                               ignore_s=kp.noise_ignore_seconds)
            self.keypad = self._open(f"the keypad (keypad.port={port!r})",
                                     lambda: Keypad(port, baud=kp.baud, guard=guard))
            self.keypad.when_key = lambda key: put(KeyPressed(key))
            self.keypad.when_noise = lambda count: put(KeypadNoise(count))
            self.keypad.when_flood = lambda started, detail, n: put(KeypadFlood(started, detail, n))
            self.keypad.when_lost = lambda reason: put(KeypadLink(False, reason))
            self.keypad.when_restored = lambda: put(KeypadLink(True))
        if gpio.tamper is not None:
            pin = gpio.tamper
            tamper = self._open(f"the tamper switch (gpio.tamper={pin})",
                                lambda: TamperSwitch(pin, debounce_ms=debounce, pin_factory=factory))
            _wire(tamper, put, TamperChanged(True), TamperChanged(False))
        if gpio.lamp_ok is not None:
            pin = gpio.lamp_ok
            lamp = self._open(f"the lamp sensor (gpio.lamp_ok={pin})",
                              lambda: LampSensor(pin, debounce_ms=debounce, pin_factory=factory))
            _wire(lamp, put, LampChanged(True), LampChanged(False))

    # --- simulation panel: what `safehouse press/release` drive -----------------------------

    def _sim_pin(self, number: int) -> Any:
        if not self.simulated:
            raise HardwareError("this kiosk runs on real hardware (device.hardware = \"pi\"): "
                                "press the physical button instead")
        return self.pin_factory.pin(number)

    def press(self) -> None:
        """Drive the simulated button pin low (the button shorts it to GND)."""
        self._sim_pin(self._gpio.button).drive_low()

    def type_keys(self, keys: str) -> None:
        """Sim only: bytes into the simulated serial keypad, read back by the real driver."""
        if not self.simulated or self.keypad is None:
            raise HardwareError("keys drives the simulated keypad only; this kiosk has real hardware "
                                "(device.hardware = \"pi\"): use the keypad")
        self.keypad.inject(keys.encode("utf-8", "replace"))

    def release(self) -> None:
        self._sim_pin(self._gpio.button).drive_high()

    def lid(self, is_open: bool) -> None:
        """Sim only: open the enclosure lid (the switch opens, the pull-up reads high) or shut it."""
        if self._gpio.tamper is None:
            raise HardwareError("no tamper switch: gpio.tamper is not set in the config")
        pin = self._sim_pin(self._gpio.tamper)
        if is_open:
            pin.drive_high()
        else:
            pin.drive_low()

    def release_after(self, seconds: float) -> None:
        timer = threading.Timer(seconds, self._release_quietly)
        timer.daemon = True
        timer.start()

    def _release_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.release()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for device in reversed(self._opened):
            try:
                device.close()
            except Exception:
                _LOG.exception("closing %r failed", device)
        self._opened.clear()

    def __enter__(self) -> Hardware:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wire(device: Any, put: Any, on: Input, off: Input) -> None:
    device.when_activated = lambda: put(on)
    device.when_deactivated = lambda: put(off)
