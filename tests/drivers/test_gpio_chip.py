"""The header's GPIO chip is found by its label on fake sysfs trees laid out like real Pis.

Each tree copies what a model's kernel shows (raspberrypi/linux #6144, gpiozero #1166): the
gpio bus devices gpiochipN under their platform device, and the legacy class entries
gpiochipBASE (numbered by GPIO base, not by chip) whose ``device`` link points at that
platform device. The last test opens the chosen chip with the real lgpio, which fails here
(no /dev/gpiochip* on x86) with the firmware's message naming the chip.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.gpiochip import Chip, header_chip, list_chips
from tests.rig.availability import unavailable

REPO = Path(__file__).resolve().parents[2]


def fake_sysfs(root: Path, chips: list[tuple[str, int, int, str]], *, legacy: bool = True,
               by_id: bool = False) -> Path:
    """A /sys with one (platform device, chip number, gpio base, label) per chip."""
    sysfs = root / "sys"
    bus = sysfs / "bus/gpio/devices"
    klass = sysfs / "class/gpio"
    bus.mkdir(parents=True)
    klass.mkdir(parents=True)
    for platform, number, base, label in chips:
        device = sysfs / "devices/platform" / platform
        (device / f"gpiochip{number}").mkdir(parents=True)
        (bus / f"gpiochip{number}").symlink_to(os.path.relpath(device / f"gpiochip{number}", bus))
        if legacy:
            entry = device / "gpio" / f"gpiochip{base}"
            entry.mkdir(parents=True)
            (entry / "label").write_text(label + "\n")
            (entry / "device").symlink_to(os.path.relpath(device, entry))
            (klass / f"gpiochip{base}").symlink_to(os.path.relpath(entry, klass))
        if by_id:
            entry = device / "gpio" / f"chip{number}"
            entry.mkdir(parents=True)
            (entry / "label").write_text(label + "\n")
            (klass / f"chip{number}").symlink_to(os.path.relpath(entry, klass))
    return sysfs


PI4 = [("soc/fe200000.gpio", 0, 512, "pinctrl-bcm2711"),
       ("soc/firmware/raspberrypi-exp-gpio", 1, 570, "raspberrypi-exp-gpio")]
PI3 = [("soc/3f200000.gpio", 0, 512, "pinctrl-bcm2835"),
       ("soc/firmware/raspberrypi-exp-gpio", 1, 566, "raspberrypi-exp-gpio")]
# Pi 5 before 6.6.45: four brcmstb chips (two per platform device) first, RP1 as gpiochip4.
PI5_OLD = [("107d508500.gpio", 0, 512, "gpio-brcmstb@107d508500"),
           ("107d508500.gpio", 1, 544, "gpio-brcmstb@107d508520"),
           ("107d517c00.gpio", 2, 548, "gpio-brcmstb@107d517c00"),
           ("107d517c00.gpio", 3, 565, "gpio-brcmstb@107d517c20"),
           ("axi/1000120000.pcie/1f000d0000.gpio", 4, 571, "pinctrl-rp1")]
# Pi 5 from 6.6.45: RP1 is gpiochip0, the SoC chips from 10 (a gpiochip4 chardev is gone).
PI5_NEW = [("axi/1000120000.pcie/1f000d0000.gpio", 0, 571, "pinctrl-rp1"),
           ("107d508500.gpio", 10, 512, "gpio-brcmstb@107d508500"),
           ("107d508500.gpio", 11, 544, "gpio-brcmstb@107d508520"),
           ("107d517c00.gpio", 12, 548, "gpio-brcmstb@107d517c00"),
           ("107d517c00.gpio", 13, 565, "gpio-brcmstb@107d517c20")]


@pytest.mark.parametrize(("board", "chips", "expected"), [
    ("Pi 4", PI4, 0), ("Pi 3 / Zero 2 W", PI3, 0), ("Pi 5, kernel < 6.6.45", PI5_OLD, 4),
    ("Pi 5, kernel >= 6.6.45", PI5_NEW, 0)])
def test_the_header_chip_is_the_one_labelled_for_the_header(tmp_path: Path, board: str,
                                                          chips: list[tuple[str, int, int, str]],
                                                          expected: int) -> None:
    assert header_chip(fake_sysfs(tmp_path, chips), tmp_path / "dev") == expected, board


def test_a_pi5_with_rp1_on_chip_12_is_still_found_by_label(tmp_path: Path) -> None:
    chips = [(p, n + 10, b, lab) for p, n, b, lab in PI5_OLD[:4]] + [(PI5_OLD[4][0], 14, 571, "pinctrl-rp1")]
    assert header_chip(fake_sysfs(tmp_path, chips), tmp_path / "dev") == 14


def test_two_chips_under_one_device_stay_unlabelled_rather_than_guessed(tmp_path: Path) -> None:
    chips = list_chips(fake_sysfs(tmp_path, PI5_OLD), tmp_path / "dev")
    assert chips[0] == Chip(0, None) and chips[1] == Chip(1, None)
    assert chips[4] == Chip(4, "pinctrl-rp1")


def test_kernels_that_name_class_entries_by_chip_number_label_every_chip(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, PI5_NEW, legacy=False, by_id=True)
    chips = list_chips(sysfs, tmp_path / "dev")
    assert [str(c) for c in chips][:2] == ["gpiochip0 [pinctrl-rp1]", "gpiochip10 [gpio-brcmstb@107d508500]"]
    assert header_chip(sysfs, tmp_path / "dev") == 0


def test_no_header_chip_names_every_chip_found(tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, [("platform/gpio-mockup.0", 0, 512, "gpio-mockup-A"),
                                  ("107d508500.gpio", 3, 540, "gpio-brcmstb@107d508500")])
    with pytest.raises(HardwareError) as err:
        header_chip(sysfs, tmp_path / "dev")
    message = str(err.value)
    assert "gpiochip0 [gpio-mockup-A]" in message and "gpiochip3 [gpio-brcmstb@107d508500]" in message
    assert "pinctrl-rp1, pinctrl-bcm2711, pinctrl-bcm2835" in message and 'hardware = "sim"' in message


def test_a_machine_without_gpio_says_so(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    with pytest.raises(HardwareError, match=r"found: none \(no gpiochip in .*bus/gpio/devices\)"):
        header_chip(tmp_path / "sys", tmp_path / "dev")


def test_without_the_sysfs_class_the_chardev_is_asked_and_an_unreadable_one_stays_unknown(
        tmp_path: Path) -> None:
    sysfs = fake_sysfs(tmp_path, PI4, legacy=False)
    dev = tmp_path / "dev"
    dev.mkdir()
    (dev / "gpiochip0").write_bytes(b"")  # a regular file: the ioctl fails (ENOTTY)
    assert list_chips(sysfs, dev) == [Chip(0, None), Chip(1, None)]
    with pytest.raises(HardwareError, match=r"gpiochip0 \[unknown label\]"):
        header_chip(sysfs, dev)


def test_the_pi_factory_opens_the_labelled_chip_with_the_real_lgpio(tmp_path: Path) -> None:
    """A Pi 5 tree: the firmware asks lgpio for gpiochip4, not 0, and says which one failed.

    In a subprocess whose working directory is tmp: ``import lgpio`` leaves its FIFO there.
    """
    if importlib.util.find_spec("lgpio") is None:
        unavailable("lgpio is not installed (the dev extra pins lgpio==0.2.2.0)")
    sysfs = fake_sysfs(tmp_path, PI5_OLD)
    script = ("import sys\nfrom pathlib import Path\n"
              "from safehouse.drivers.pins import make_pin_factory\n"
              "try:\n    make_pin_factory('pi', sysfs=Path(sys.argv[1]), dev=Path(sys.argv[2]))\n"
              "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    res = subprocess.run([sys.executable, "-c", script, str(sysfs), "/dev"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("HardwareError cannot open the Raspberry Pi GPIO /dev/gpiochip4"), res.stdout
    assert "can not open gpiochip" in res.stdout  # lgpio's own words: it got as far as the open


@pytest.mark.hw_raspberrypi
def test_on_a_real_pi_the_chosen_chip_is_the_header_by_lgpios_own_chip_info(tmp_path: Path) -> None:
    """On the kiosk (``pytest -m hw_raspberrypi``): sysfs and the kernel's chip info agree."""
    script = ("import lgpio\nfrom safehouse.drivers.gpiochip import header_chip\n"
              "n = header_chip()\nh = lgpio.gpiochip_open(n)\n"
              "print(n, *lgpio.gpio_get_chip_info(h)[1:], sep='|')\nlgpio.gpiochip_close(h)\n")
    res = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    number, lines, name, label = res.stdout.strip().split("|")
    assert label in ("pinctrl-rp1", "pinctrl-bcm2711", "pinctrl-bcm2835"), res.stdout
    assert name == f"gpiochip{number}" and int(lines) >= 54, res.stdout  # the header's 28 GPIOs and more
