"""The daemon in-process on gpiozero's MockFactory: what the pins really do after a press."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from safehouse.device.core.clock import SystemClock
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon
from safehouse.services.control import request
from safehouse.services.outbox import read_events
from tests.rig.kiosk_config import write_config
from tests.rig.wait import wait_for

RED, BLUE, BUTTON, BUZZER, TAMPER, LAMP = 17, 27, 22, 23, 5, 6


def start(folder: Path, factory: MockFactory, extra: str = "", **device: str) -> Daemon:
    cfg = configuration.load(write_config(folder, extra, **device))
    daemon = Daemon(cfg, pin_factory=factory)
    daemon.start()
    return daemon


def test_a_press_on_the_button_pin_flashes_red_and_blue_at_4_hz_or_faster(
        short_dir: Path, factory: MockFactory) -> None:
    daemon = start(short_dir, factory)
    try:
        red, blue = factory.pin(RED), factory.pin(BLUE)
        assert red.state > 0 and blue.state > 0  # the beacon: the 24-hour sign is lit
        red.clear_states()
        factory.pin(BUTTON).drive_low()
        assert wait_for(lambda: daemon.loop.state.alarm is not None)
        time.sleep(1.05)
        factory.pin(BUTTON).drive_high()
        red_ons = [s for prev, s in zip(red.states, red.states[1:], strict=False)
                   if s.state == 1.0 and prev.state != 1.0]
        assert len(red_ons) >= 4, red.states
        assert red.state in (0.0, 1.0) and blue.state in (0.0, 1.0)
        assert not (red.state == 1.0 and blue.state == 1.0)
    finally:
        daemon.close()


class LocalHourClock(SystemClock):
    """The real monotonic clock, and a wall clock stopped at a local hour of 1 June 2026."""

    def __init__(self, hour: int) -> None:
        super().__init__()
        self._wall = datetime(2026, 6, 1, hour, 30).timestamp()  # naive: local, whatever the TZ

    def wall(self) -> float:
        return self._wall


@pytest.mark.parametrize(("hour", "level"), [(23, 0.4), (3, 0.4), (12, 1.0), (7, 1.0)])
def test_the_idle_beacon_dims_by_the_daemons_clock_not_the_machines(
        short_dir: Path, factory: MockFactory, hour: int, level: float) -> None:
    cfg = configuration.load(write_config(short_dir))
    daemon = Daemon(cfg, clock=LocalHourClock(hour), pin_factory=factory)
    daemon.start()
    try:
        assert (cfg.light.night_brightness, cfg.light.day_brightness) == (0.4, 1.0)
        assert wait_for(lambda: max(factory.pin(RED).state, factory.pin(BLUE).state) > 0)
        assert factory.pin(RED).state == pytest.approx(level)
    finally:
        daemon.close()  # stop() only asks run() to end: the threads and pins stay


def test_tamper_and_lamp_inputs_become_events(short_dir: Path, factory: MockFactory) -> None:
    extra = f"[gpio]\ntamper = {TAMPER}\nlamp_ok = {LAMP}\n[button]\ndebounce_ms = 5\n"
    daemon = start(short_dir, factory, extra)
    try:
        factory.pin(TAMPER).drive_high()  # lid switch opens: the pull-up reads high
        assert wait_for(lambda: daemon.loop.state.tamper_open)
        factory.pin(TAMPER).drive_low()
        assert wait_for(lambda: not daemon.loop.state.tamper_open)
        factory.pin(LAMP).drive_high()  # no lamp current: the sensor releases the line
        assert wait_for(lambda: daemon.loop.state.lamp.lit is False)
        types = [(e.type, e.code) for e in read_events(daemon.config.device.state_dir)]
        assert types == [("tamper", 137), ("tamper_restored", 137)]
    finally:
        daemon.close()


def test_sim_only_commands_are_refused_on_real_hardware(short_dir: Path, factory: MockFactory) -> None:
    daemon = start(short_dir, factory, hardware="pi")  # real-hardware config, pins still mocked here
    try:
        sock = daemon.config.control.socket
        with pytest.raises(OSError, match="keys drives the simulated keypad only"):
            request(sock, "keys", keys="1234#")
        with pytest.raises(OSError, match="press the physical button"):
            request(sock, "press")
        factory.pin(BUTTON).drive_low()  # ...while the physical button still works
        assert wait_for(lambda: daemon.loop.state.alarm is not None)
    finally:
        daemon.close()
    assert not daemon.config.control.socket.exists()
    assert factory.pin(RED).state == 0 and factory.pin(BLUE).state == 0  # closed: lights off


def _ack_with(folder: Path, factory: MockFactory, pin: str) -> tuple[list[Any], list[str]]:
    """Press, wait, type ``pin#`` on the simulated keypad; return the pins' level sequences."""
    from safehouse.services.volunteers_edit import add

    config = write_config(folder, "[button]\ndebounce_ms = 0\n")
    add(folder / "volunteers.toml", "v1", "V One", "4711", duress_pin="9110")
    daemon = Daemon(configuration.load(config), pin_factory=factory)
    daemon.start()
    try:
        for number in (RED, BLUE, BUZZER):
            factory.pin(number).clear_states()
        factory.pin(BUTTON).drive_low()
        assert wait_for(lambda: daemon.loop.state.alarm is not None)
        factory.pin(BUTTON).drive_high()
        daemon.hardware.type_keys(pin + "#")
        assert wait_for(lambda: daemon.loop.state.light == "acknowledged")
        time.sleep(0.5)  # the ok chirp
        levels = [[round(s.state, 2) for s in factory.pin(n).states] for n in (RED, BLUE, BUZZER)]
        return levels, [e.type for e in read_events(daemon.config.device.state_dir)]
    finally:
        daemon.close()


def test_a_duress_pin_looks_and_sounds_exactly_like_the_normal_pin(short_dir: Path) -> None:
    (short_dir / "a").mkdir()
    (short_dir / "b").mkdir()
    normal_factory, duress_factory = MockFactory(pin_class=MockPWMPin), MockFactory(pin_class=MockPWMPin)
    try:
        normal, normal_events = _ack_with(short_dir / "a", normal_factory, "4711")
        duress, duress_events = _ack_with(short_dir / "b", duress_factory, "9110")
    finally:
        normal_factory.close()
        duress_factory.close()
    # the alarm flashes for slightly different times, so compare what was shown, in order
    def shown(levels: list[Any]) -> list[Any]:
        return [level for i, level in enumerate(levels) if i == 0 or level != levels[i - 1]]

    assert shown(normal[2]) == shown(duress[2])  # buzzer: chime, keys, ok — the same
    assert normal[0][-1] == duress[0][-1] and normal[1][-1] == duress[1][-1]  # same light now
    assert "duress" in duress_events and "duress" not in normal_events
    assert normal_events.count("ack") == duress_events.count("ack") == 1
