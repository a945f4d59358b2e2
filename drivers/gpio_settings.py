"""[gpio]: which BCM pin each wire of the kiosk is on, declared once (see device.core.settings).

Kept apart from ``pins.py`` so that loading the config (every CLI command does) does not
import gpiozero; the parts that open these pins import it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from safehouse.device.core.settings import in_range, setting

BCM = in_range(0, 27)


@dataclass(frozen=True)
class GpioSettings:
    """[gpio]: BCM pin numbers of the light box, button, buzzer, status LED and optional inputs."""

    red: int = setting(17, "BCM pin of the red light channel", BCM)
    blue: int = setting(27, "BCM pin of the blue light channel", BCM)
    button: int = setting(22, "BCM pin of the panic button (to GND, pull-up)", BCM)
    buzzer: int = setting(23, "BCM pin of the buzzer", BCM)
    status_led: int = setting(24, "BCM pin of the technician's link LED", BCM)
    tamper: int | None = setting(None, "BCM pin of the enclosure tamper switch (absent = not wired)", BCM)
    lamp_ok: int | None = setting(None, "BCM pin of the lamp current sensor (absent = not wired)", BCM)

    def cross_problems(self, section: str) -> list[str]:
        """Two wires on one pin: the second claim would fail at start-up with a vaguer error."""
        problems: list[str] = []
        owners: dict[int, str] = {}
        for f in fields(self):
            pin = getattr(self, f.name)
            if pin is None:
                continue
            if pin in owners:
                problems.append(f"{section}.{f.name}: pin {pin} is already used by {section}.{owners[pin]}")
            else:
                owners[pin] = f.name
        return problems
