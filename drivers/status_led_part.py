"""The technician's link LED as a part: no settings of its own (its pin is gpio.status_led).

The driver (``status_led.py``, gpiozero) is imported only when the part is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safehouse.drivers.status_led import StatusLed


def build(pin: int, *, pin_factory: Any) -> StatusLed:
    """Open the status LED on ``pin``."""
    from safehouse.drivers.status_led import StatusLed

    return StatusLed(pin, pin_factory=pin_factory)
