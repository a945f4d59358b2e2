"""The kiosk's hardware as one composite, built from config, wired to the core loop.

Callbacks do exactly one thing — put a typed input on the core queue. Building is all or
nothing: if the fifth device fails to open, the four already opened are closed before the
error propagates, so a retry (or systemd's restart) never finds a pin still claimed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError
from safehouse.device.runtime.config import Config
from safehouse.device.runtime.parts import HARDWARE, Bench
from safehouse.drivers.pins import make_pin_factory

if TYPE_CHECKING:
    from safehouse.drivers.buzzer import Buzzer
    from safehouse.drivers.keypad import Keypad
    from safehouse.drivers.lightbox import LightBox
    from safehouse.drivers.panic_button import PanicButton
    from safehouse.drivers.status_led import StatusLed

_LOG = logging.getLogger(__name__)


class Hardware(Closing):
    """The kiosk's hardware: every part registered in ``parts.HARDWARE``, in its order.

    This class only opens them (all or nothing), wires their inputs to the core queue and
    drives the simulation panel. A part registered with an ``attribute`` is exposed under that
    name, declared below with its type so that mypy checks what uses it (a test holds the two
    lists equal); a part that is only wired needs no line here.
    """

    light: LightBox
    status_led: StatusLed
    button: PanicButton
    buzzer: Buzzer | None
    keypad: Keypad | None

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

    def _open(self, what: str, build: Callable[[], Any]) -> Any:
        try:
            device = build()
        except HardwareError:
            raise
        except Exception as exc:
            # ``what`` names the part and the keys it was opened from ("the keypad (keypad.port=
            # '/dev/ttyUSB0')"): a serial part has no [gpio] pin to check
            raise HardwareError(f"cannot open {what}: {exc}; check those keys in the config") from exc
        if device is not None:  # None: the config leaves this part out
            self._opened.append(device)
        return device

    def _build(self, config: Config, put: Any) -> None:
        bench = Bench(self.pin_factory, self.simulated, self._local_now)
        for part in HARDWARE:
            device = self._open(part.what(config, bench), functools.partial(part.build, config, bench))
            if device is not None and part.wire is not None:
                part.wire(device, put)
            if part.attribute is not None:
                setattr(self, part.attribute, device)

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

