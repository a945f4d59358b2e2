"""Choose the gpiozero pin factory once, from config, and hand it to every driver.

Drivers never fall back to gpiozero's global default factory: off a Pi that fallback raises
``BadPinFactory`` from deep inside a constructor, and on a Pi it would silently ignore the
``hardware = "sim"`` setting. Passing one explicit factory keeps the choice in one place.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpiozero.pins import Factory
from gpiozero.pins.mock import MockFactory, MockPWMPin

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.gpiochip import header_chip

_LOG = logging.getLogger(__name__)

HARDWARE_CHOICES = ("pi", "sim")


def make_pin_factory(hardware: str, *, sysfs: Path = Path("/sys"), dev: Path = Path("/dev")) -> Factory:
    """Build the factory for ``hardware`` ("pi" or "sim", as in the config's device.hardware).

    lgpio is imported only for "pi" so the firmware imports and its tests run on an x86 box
    where lgpio cannot open a gpiochip. The chip is the one whose label is the header's
    (drivers/gpiochip.py), never gpiozero's guess by number. Each step fails with its own
    HardwareError: loading lgpio, reading the board from /proc, finding the header's chip,
    opening it.
    """
    if hardware == "sim":
        _LOG.info("GPIO is simulated (gpiozero MockFactory with PWM pins)")
        return MockFactory(pin_class=MockPWMPin)
    if hardware == "pi":
        return _lgpio_factory(sysfs, dev)
    raise ValueError(f"hardware must be one of {', '.join(HARDWARE_CHOICES)}, got {hardware!r}")


def _lgpio_factory(sysfs: Path, dev: Path) -> Factory:
    try:
        # `import lgpio` starts a thread that makes a FIFO .lgd-nfyN in the working directory
        # (or $LG_WD): the unit gives it WorkingDirectory=/run/safehouse.
        from gpiozero.pins.lgpio import LGPIOFactory
    except Exception as exc:
        hint = ("lgpio needs a writable working directory for its .lgd-nfy FIFO (the unit's "
                f"WorkingDirectory=, here {os.getcwd()!r}); " if ".lgd-nfy" in str(exc) else "")
        raise HardwareError(
            f"cannot load lgpio for the Raspberry Pi GPIO ({type(exc).__name__}: {exc}); {hint}"
            'install lgpio (apt python3-lgpio, or the pip extra "pi") on a Pi, or set '
            'hardware = "sim" in [device] of config.toml to run off a Pi'
        ) from exc
    _board_readable()
    chip = header_chip(sysfs, dev)
    try:
        factory = LGPIOFactory(chip=chip)
    except Exception as exc:
        raise HardwareError(
            f"cannot open the Raspberry Pi GPIO {dev / f'gpiochip{chip}'} through lgpio "
            f"({type(exc).__name__}: {exc}); the daemon's user needs the gpio group and the unit "
            "DeviceAllow=char-gpiochip rw"
        ) from exc
    _LOG.info("GPIO is real (gpiozero LGPIOFactory on gpiochip%d)", chip)
    return factory


def _board_readable() -> None:
    """gpiozero names the board (to map pin numbers) from /proc when the first pin is claimed.

    A unit with ProcSubset=pid hides /proc/cpuinfo and /proc/device-tree: that first claim would
    fail as if the [gpio] pin were wrong. Asked here, the failure names the unit instead. Not a
    Pi (gpiozero's PinUnknownPi) is left to the chip open, which says so in its own words.
    """
    from gpiozero.pins.local import get_pi_revision

    try:
        get_pi_revision()
    except OSError as exc:
        raise HardwareError(
            f"cannot identify the Raspberry Pi board: gpiozero reads /proc/device-tree or "
            f"/proc/cpuinfo ({type(exc).__name__}: {exc}); the unit must not set ProcSubset=pid"
        ) from exc
    except Exception:  # PinUnknownPi: off a Pi; the chip open below fails with the clearer words
        pass


@contextmanager
def opening(what: str, pin: int) -> Iterator[None]:
    """Turn any failure while claiming ``pin`` into a HardwareError a technician can act on.

    gpiozero and lgpio raise a zoo of exceptions (pin in use, invalid pin, gpiochip busy);
    the daemon should not need to know them, only which wire and which config key to check.
    """
    try:
        yield
    except HardwareError:
        raise
    except Exception as exc:
        raise HardwareError(
            f"{what} on GPIO{pin}: cannot open the pin ({type(exc).__name__}: {exc}); "
            "check the [gpio] section of config.toml names the wired BCM pin and that no other "
            "device or process (e.g. a second safehouse daemon) holds it"
        ) from exc


class ClosedAtBootPin(MockPWMPin):  # type: ignore[misc]
    """A simulated line whose contact to GND is already closed at power-up.

    A plain mock pin jumps high when a driver enables the pull-up; a real closed contact wins
    over the pull-up, so no edge ever happens. The simulated kiosk uses it for a shut lid's
    tamper switch and a lit lamp's sensor, so a healthy sim kiosk boots without faults.
    """

    def _set_pull(self, value: str) -> None:
        super()._set_pull(value)
        self.drive_low()  # before the driver listens for edges: no callback fires


def closed_at_boot(factory: MockFactory, pin: int) -> MockPWMPin:
    """Claim ``pin`` on a MockFactory as a contact closed to GND at power-up."""
    return factory.pin(pin, pin_class=ClosedAtBootPin)
