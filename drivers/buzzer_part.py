"""The buzzer as a part: its [buzzer] settings (on or off, active or passive, each sound) and factory.

The driver (``buzzer.py``, gpiozero) is imported only when the part is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from safehouse.device.core.settings import setting
from safehouse.device.core.signals import Sound

if TYPE_CHECKING:
    from safehouse.drivers.buzzer import Buzzer


@dataclass(frozen=True)
class BuzzerSettings:
    """[buzzer]: the buzzer and which sounds it makes."""

    enabled: bool = setting(True, "false silences the buzzer entirely")
    tonal: bool = setting(False, "true for a passive piezo driven with tones (TonalBuzzer)")
    click: bool = setting(True, "a click on every key")
    ok: bool = setting(True, "a chirp when an entry is accepted")
    error: bool = setting(True, "three beeps when an entry is refused")
    chime: bool = setting(True, "the chime that summons the volunteer until the alarm is acknowledged")
    rollcall: bool = setting(True, "the roll-call chime")

    def sounds(self) -> dict[str, bool]:
        """Each sound's switch, by the name the buzzer plays it under."""
        return {Sound.CLICK: self.click, Sound.OK: self.ok, Sound.ERROR: self.error,
                Sound.CHIME: self.chime, Sound.ROLLCALL: self.rollcall}


def build(settings: BuzzerSettings, pin: int, *, pin_factory: Any) -> Buzzer | None:
    """Open the buzzer on ``pin``, or nothing when [buzzer] enabled = false."""
    if not settings.enabled:
        return None
    from safehouse.drivers.buzzer import Buzzer

    return Buzzer(pin, pin_factory=pin_factory, tonal=settings.tonal, enabled=settings.sounds())
