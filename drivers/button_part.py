"""The panic button and the other contact inputs as parts: [button] settings and their factories.

The tamper switch and the lamp sensor share the button's debounce. The drivers
(``panic_button.py``, gpiozero) are imported only when a part is built, so loading the config
stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safehouse.device.core.settings import in_range, one_of, setting

if TYPE_CHECKING:
    from safehouse.drivers.panic_button import LampSensor, PanicButton, TamperSwitch


@dataclass(frozen=True)
class ButtonSettings:
    """[button]: debounce, press or hold, and when a held button is a fault."""

    debounce_ms: int = setting(20, "level must hold this long to count (ms)", in_range(0, 500))
    trigger: str = setting("press", "'press' raises at once; 'hold' after hold_seconds",
                           one_of("press", "hold"))
    hold_seconds: float = setting(2.0, "hold time when trigger = 'hold'", in_range(0.1, 30.0))
    stuck_after: float = setting(30.0, "held longer than this = button_stuck fault (s)",
                                 in_range(1.0, 3600.0))


def build(settings: ButtonSettings, pin: int, *, pin_factory: Any) -> PanicButton:
    """Open the panic button (to GND, pull-up) on ``pin``."""
    from safehouse.drivers.panic_button import PanicButton

    return PanicButton(pin, debounce_ms=settings.debounce_ms, pin_factory=pin_factory)


def build_tamper(settings: ButtonSettings, pin: int, *, pin_factory: Any, simulated: bool) -> TamperSwitch:
    """Open the lid switch; simulated, the lid starts shut (switch closed to GND)."""
    from safehouse.drivers.panic_button import TamperSwitch
    from safehouse.drivers.pins import closed_at_boot

    if simulated:
        closed_at_boot(pin_factory, pin)
    return TamperSwitch(pin, debounce_ms=settings.debounce_ms, pin_factory=pin_factory)


def build_lamp(settings: ButtonSettings, pin: int, *, pin_factory: Any, simulated: bool) -> LampSensor:
    """Open the lamp current sensor; simulated, the lamp starts lit (sensor pulling low)."""
    from safehouse.drivers.panic_button import LampSensor
    from safehouse.drivers.pins import closed_at_boot

    if simulated:
        closed_at_boot(pin_factory, pin)
    return LampSensor(pin, debounce_ms=settings.debounce_ms, pin_factory=pin_factory)
