"""Find the GPIO chip that drives the 40-pin header by its label, never by its number.

gpiozero's LGPIOFactory guesses: chip 4 on a Pi 5 whenever ``/dev/gpiochip4`` exists, else 0.
Kernels from 6.6.45 moved the Pi 5 header (RP1, label ``pinctrl-rp1``) to gpiochip0 and later
images add a ``gpiochip4`` link, other kernels number the SoC chips from 10 upwards: a number
says nothing, the label does. Pi 4/400/CM4 label theirs ``pinctrl-bcm2711``, Pi 0-3 and
Zero 2 W ``pinctrl-bcm2835``.

The label of gpiochipN (the chardev lgpio opens) is read, first source that has it:

1. ``/sys/class/gpio/chipN/label`` (kernels from 6.17 name a class entry after the chardev);
2. the legacy ``/sys/class/gpio/gpiochipBASE/label`` whose ``device`` is gpiochipN's parent
   device (or gpiochipN itself), used only when exactly one legacy entry sits there (a Pi 5's
   brcmstb devices carry two chips each: those stay unlabelled rather than guessed);
3. the GPIO_GET_CHIPINFO ioctl on ``/dev/gpiochipN`` (what ``gpiodetect`` does), for kernels
   without the sysfs GPIO class.

The roots are parameters so tests build fake sysfs trees in a temp dir.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from safehouse.device.core.errors import HardwareError

_LOG = logging.getLogger(__name__)

HEADER_LABELS = ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835")
# struct gpiochip_info { char name[32]; char label[32]; __u32 lines; } read by _IOR(0xB4, 0x01)
_CHIPINFO_SIZE = 68
_GPIO_GET_CHIPINFO_IOCTL = (2 << 30) | (_CHIPINFO_SIZE << 16) | (0xB4 << 8) | 0x01


@dataclass(frozen=True)
class Chip:
    number: int
    label: str | None  # None: no source could name it

    def __str__(self) -> str:
        return f"gpiochip{self.number} [{self.label or 'unknown label'}]"


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _legacy_labels(sysfs: Path) -> dict[Path, list[str]]:
    """Legacy class entries grouped by the device they hang under."""
    found: dict[Path, list[str]] = {}
    for entry in sorted((sysfs / "class/gpio").glob("gpiochip*")):
        label = _read(entry / "label")
        if label is None:
            continue
        try:
            owner = (entry / "device").resolve(strict=True)
        except OSError:
            continue
        found.setdefault(owner, []).append(label)
    return found


def _ioctl_label(dev: Path, number: int) -> str | None:
    try:
        fd = os.open(dev / f"gpiochip{number}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = fcntl.ioctl(fd, _GPIO_GET_CHIPINFO_IOCTL, bytes(_CHIPINFO_SIZE))
    except OSError:
        return None
    finally:
        os.close(fd)
    label = info[32:64].split(b"\0", 1)[0].decode("utf-8", "replace")
    return label or None


def list_chips(sysfs: Path = Path("/sys"), dev: Path = Path("/dev")) -> list[Chip]:
    """Every gpiochipN the kernel has, with its label where one can be read."""
    bus = sysfs / "bus/gpio/devices"
    numbers = sorted(int(m.group(1)) for p in (bus.iterdir() if bus.is_dir() else [])
                     if (m := re.fullmatch(r"gpiochip(\d+)", p.name)))
    legacy = _legacy_labels(sysfs)
    chips = []
    for number in numbers:
        label = _read(sysfs / f"class/gpio/chip{number}/label")
        if label is None:
            device = (bus / f"gpiochip{number}").resolve()
            for owner in (device, device.parent):
                if len(legacy.get(owner, [])) == 1:
                    label = legacy[owner][0]
                    break
        if label is None:
            label = _ioctl_label(dev, number)
        chips.append(Chip(number, label))
    return chips


def header_chip(sysfs: Path = Path("/sys"), dev: Path = Path("/dev")) -> int:
    """Number of the gpiochip behind the 40-pin header, or a HardwareError naming what exists."""
    chips = list_chips(sysfs, dev)
    for chip in chips:
        if chip.label in HEADER_LABELS:
            _LOG.info("GPIO header is %s", chip)
            return chip.number
    found = ", ".join(str(c) for c in chips) or f"none (no gpiochip in {sysfs / 'bus/gpio/devices'})"
    raise HardwareError(
        f"no GPIO chip drives the Raspberry Pi's 40-pin header: looked for the labels "
        f"{', '.join(HEADER_LABELS)}; found: {found}. On a Pi, check the kernel "
        '(`gpiodetect`); off a Pi, set hardware = "sim" in [device] of config.toml'
    )
