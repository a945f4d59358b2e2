"""The hardware assembly loops over the registered parts: each opened from config, wired, closed.

Opening is all or nothing (a part that fails closes those already open, so a retry finds no
pin claimed) and loading the config imports no driver library: parts import theirs when built.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from safehouse.device.core.errors import HardwareError
from safehouse.device.core.inputs import ButtonChanged, LampChanged, TamperChanged
from safehouse.device.runtime import config
from safehouse.device.runtime.hardware import Hardware
from safehouse.drivers.pins import make_pin_factory
from tests.rig.wait import wait_for


def _config(**gpio: Any) -> config.Config:
    return config.from_tree({"device": {"id": "K1", "precinct": "p", "hardware": "sim"},
                             "gpio": {"tamper": 5, "lamp_ok": 6, **gpio}})


def test_every_part_is_opened_wired_and_exposed() -> None:
    got: list[Any] = []
    with Hardware(_config(), got.append, wall=lambda: 0.0) as hw:
        assert hw.buzzer is not None and hw.keypad is not None  # sim: a loop:// keypad
        assert hw.light.pattern and hw.status_led is not None and hw.button is not None
        hw.press()
        assert wait_for(lambda: ButtonChanged(True) in got)
        hw.release()
        assert wait_for(lambda: ButtonChanged(False) in got)
        hw.lid(True)
        assert wait_for(lambda: TamperChanged(True) in got)
        assert LampChanged(False) not in got  # the simulated lamp starts lit


def test_parts_the_config_leaves_out_are_none() -> None:
    cfg = config.from_tree({"device": {"id": "K1", "precinct": "p", "hardware": "sim"},
                            "buzzer": {"enabled": False}})
    with Hardware(cfg, lambda _inp: None, pin_factory=make_pin_factory("sim")) as hw:
        assert hw.buzzer is None and hw.keypad is not None
        with pytest.raises(HardwareError, match=r"gpio\.tamper is not set"):
            hw.lid(True)


def test_a_part_that_cannot_open_closes_the_ones_already_open() -> None:
    from gpiozero import PWMLED, DigitalInputDevice

    factory = make_pin_factory("sim")
    squatter = DigitalInputDevice(5, pin_factory=factory)  # the tamper switch's pin, taken
    try:
        with pytest.raises(HardwareError, match=r"tamper switch on GPIO5: cannot open the pin"):
            Hardware(_config(), lambda _inp: None, pin_factory=factory)
    finally:
        squatter.close()
    PWMLED(17, pin_factory=factory).close()  # the light box, opened first, let its pins go
    with Hardware(_config(), lambda _inp: None, pin_factory=factory) as hw:
        assert hw.light is not None


def test_loading_the_config_imports_no_driver_library() -> None:
    code = ("import sys; from safehouse.device.runtime import config; config.load('config/sim.toml'); "
            "print(sorted(m for m in ('gpiozero', 'paho', 'numpy', 'PIL', 'serial', 'sounddevice') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=30, cwd=config.Path(__file__).resolve().parents[2])
    assert res.stdout.strip() == "[]"
