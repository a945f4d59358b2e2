"""The hardware assembly loops over the registered parts: each opened from config, wired, closed.

Opening is all or nothing (a part that fails closes those already open, so a retry finds no
pin claimed) and loading the config imports no driver library: parts import theirs when built.
The capture parts (camera, microphone) come from their registry the same way, and are left
out, never fatal, when the config switches them off or the simulated microphone is missing.
"""

from __future__ import annotations

import inspect
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safehouse.device.core.errors import HardwareError
from safehouse.device.core.inputs import ButtonChanged, LampChanged, TamperChanged
from safehouse.device.runtime import config, evidence_parts, parts
from safehouse.device.runtime.hardware import Hardware
from safehouse.drivers.camera_pi import Picamera2Camera
from safehouse.drivers.camera_sim import SimCamera
from safehouse.drivers.microphone import DAEMON_BLOCK, SoundDeviceMicrophone
from safehouse.drivers.pins import make_pin_factory
from safehouse.services.capture import CaptureService
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


def test_a_part_not_on_gpio_is_not_blamed_on_the_gpio_section(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reason names the part and its keys (a serial modem's port), not a [gpio] pin it has none of."""
    from safehouse.device.runtime import hardware

    def no_modem(_c: parts.Sections, _b: parts.Bench) -> Any:
        raise OSError("could not open port /dev/ttyNOPE")

    modem = parts.HardwarePart(lambda c, b: "the SMS modem (sms.port='/dev/ttyNOPE')", no_modem)
    monkeypatch.setattr(hardware, "HARDWARE", (*parts.HARDWARE, modem))
    with pytest.raises(HardwareError) as info:
        Hardware(_config(), lambda _inp: None, wall=lambda: 0.0)
    assert str(info.value) == ("cannot open the SMS modem (sms.port='/dev/ttyNOPE'): could not open "
                               "port /dev/ttyNOPE; check those keys in the config")


def test_loading_the_config_imports_no_driver_library() -> None:
    code = ("import sys; from safehouse.device.runtime import config; config.load('config/sim.toml'); "
            "print(sorted(m for m in ('gpiozero', 'paho', 'numpy', 'PIL', 'serial', 'sounddevice') "
            "if m in sys.modules))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=30, cwd=config.Path(__file__).resolve().parents[2])
    assert res.stdout.strip() == "[]"


def _capture_config(hardware: str = "sim", **sections: Any) -> config.Config:
    return config.from_tree({"device": {"id": "K1", "precinct": "p", "hardware": hardware}, **sections})


def test_the_capture_registry_builds_camera_and_microphone_from_config() -> None:
    built = evidence_parts.capture_parts(_capture_config(
        camera={"width": 640, "height": 480, "quality": 70}, microphone={"device": "2", "pre_roll": 3.0}))
    camera, mic = built["camera"], built["microphone"]
    try:
        assert list(built) == [part.name for part in parts.CAPTURE] == ["camera", "microphone"]
        assert isinstance(camera, SimCamera)
        camera.start()
        frame = camera.capture()
        assert (frame.width, frame.height) == (640, 480)
        # a device named in the config is used even on a simulated kiosk, read in the daemon's blocks
        assert isinstance(mic, SoundDeviceMicrophone) and not mic.is_running
        assert (mic.device, mic.pre_roll, mic.blocksize) == (2, 3.0, DAEMON_BLOCK)
    finally:
        camera.close()
        mic.close()
    real = evidence_parts.capture_parts(_capture_config("pi", camera={"timeout": 2.0}))
    assert isinstance(real["camera"], Picamera2Camera) and real["camera"].close_wait == 2.0
    assert isinstance(real["microphone"], SoundDeviceMicrophone) and real["microphone"].device is None
    real["camera"].close()
    real["microphone"].close()


def test_capture_parts_the_config_switches_off_are_none() -> None:
    built = evidence_parts.capture_parts(_capture_config(camera={"enabled": False},
                                                         microphone={"enabled": False}))
    assert built == {"camera": None, "microphone": None}


def test_a_missing_simulated_microphone_is_logged_not_fatal(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    not_a_folder = tmp_path / "state"
    not_a_folder.write_text("a file where the state folder should be")
    with caplog.at_level(logging.ERROR):
        built = evidence_parts.capture_parts(_capture_config(
            camera={"enabled": False}, device={"id": "K1", "precinct": "p", "hardware": "sim",
                                               "state_dir": str(not_a_folder)}))
    assert built == {"camera": None, "microphone": None}
    assert "simulated microphone unavailable" in caplog.text


def test_a_capture_part_that_fails_closes_the_ones_already_built(monkeypatch: pytest.MonkeyPatch) -> None:
    closed: list[str] = []

    class Part:
        def close(self) -> None:
            closed.append("first")

    def broken(_c: parts.Sections) -> Any:
        raise ValueError("no such device")

    monkeypatch.setattr(evidence_parts, "CAPTURE", (parts.CapturePart("first", lambda _c: Part()),
                                                    parts.CapturePart("second", broken)))
    with pytest.raises(ValueError, match="no such device"):
        evidence_parts.capture_parts(_capture_config())
    assert closed == ["first"]


def test_every_capture_part_is_a_keyword_of_the_capture_service() -> None:
    """A capture part registered without its place in the service would fail only at start-up."""
    keywords = inspect.signature(CaptureService).parameters
    assert all(keywords[part.name].kind is inspect.Parameter.KEYWORD_ONLY for part in parts.CAPTURE)
