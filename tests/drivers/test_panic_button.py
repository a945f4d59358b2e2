"""Presses as the alarm core sees them: one event per real press, none for contact bounce.

The button sits between the pin and GND with the pull-up, so the tests press it with
``drive_low()`` and release it with ``drive_high()`` on gpiozero's mock pin.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from safehouse.drivers.debounce import DebouncedInput
from safehouse.drivers.panic_button import LampSensor, PanicButton, TamperSwitch
from safehouse.drivers.pins import closed_at_boot

BUTTON = 22
SETTLE = 0.1  # comfortably longer than the 20 ms debounce


class Recorder:
    """Collects (event, monotonic time) from the debouncer thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []
        self._cv = threading.Condition()

    def hook(self, name: str):
        def callback() -> None:
            with self._cv:
                self.events.append((name, time.monotonic()))
                self._cv.notify_all()

        return callback

    def wait_for(self, count: int, timeout: float = 1.0) -> bool:
        with self._cv:
            return self._cv.wait_for(lambda: len(self.events) >= count, timeout)

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def watch(button: PanicButton) -> Recorder:
    rec = Recorder()
    button.when_pressed = rec.hook("pressed")
    button.when_released = rec.hook("released")
    return rec


def toggle(pin, times: int) -> float:
    """Bounce: alternate low/high ``times`` times, 1 ms apart; returns the last edge time."""
    for i in range(times):
        (pin.drive_low if i % 2 == 0 else pin.drive_high)()
        time.sleep(0.001)
    return time.monotonic()


def held_at_boot(factory: MockFactory, pin_number: int) -> MockPWMPin:
    return closed_at_boot(factory, pin_number)


def test_clean_press_and_release_are_reported_once_after_debounce(factory: MockFactory) -> None:
    with PanicButton(BUTTON, pin_factory=factory) as button:
        rec = watch(button)
        time.sleep(SETTLE)
        pin = factory.pin(BUTTON)
        pressed_at = time.monotonic()
        pin.drive_low()
        assert rec.wait_for(1)
        assert button.is_pressed
        delay = rec.events[0][1] - pressed_at
        assert 0.019 <= delay < 0.2, f"press reported after {delay * 1000:.1f} ms"
        pin.drive_high()
        assert rec.wait_for(2)
        time.sleep(SETTLE)
        assert rec.names == ["pressed", "released"]
        assert not button.is_pressed
        assert (button.edges, button.changes) == (2, 2)


def test_bounce_that_ends_released_reports_nothing(factory: MockFactory) -> None:
    with PanicButton(BUTTON, pin_factory=factory, debounce_ms=20) as button:
        rec = watch(button)
        pin = factory.pin(BUTTON)
        toggle(pin, 5)
        pin.drive_high()
        time.sleep(SETTLE)
        assert rec.names == []
        assert not button.is_pressed
        assert (button.edges, button.changes) == (6, 0)


def test_bounce_that_settles_pressed_reports_one_press(factory: MockFactory) -> None:
    with PanicButton(BUTTON, pin_factory=factory, debounce_ms=20) as button:
        rec = watch(button)
        last_edge = toggle(factory.pin(BUTTON), 7)  # ends low: pressed
        assert rec.wait_for(1)
        time.sleep(SETTLE)
        assert rec.names == ["pressed"]
        assert rec.events[0][1] - last_edge >= 0.019, "reported before the contacts settled"
        assert button.is_pressed


def test_button_held_at_boot_is_reported_once(factory: MockFactory) -> None:
    held_at_boot(factory, BUTTON)
    with PanicButton(BUTTON, pin_factory=factory) as button:
        rec = watch(button)
        assert rec.wait_for(1)
        time.sleep(SETTLE)
        assert rec.names == ["pressed"]
        assert button.is_pressed
        assert button.edges == 0, "no edge: the start-up level alone must be reported"


def test_button_held_at_boot_reaches_a_handler_assigned_late(factory: MockFactory) -> None:
    held_at_boot(factory, BUTTON)
    with PanicButton(BUTTON, pin_factory=factory) as button:
        time.sleep(SETTLE)
        assert button.is_pressed, "start-up level not confirmed without a handler"
        rec = watch(button)
        assert rec.wait_for(1)
        time.sleep(SETTLE)
        button.when_pressed = rec.hook("pressed again")  # a second handler gets no replay
        time.sleep(SETTLE)
        assert rec.names == ["pressed"]


def test_released_at_boot_reports_nothing(factory: MockFactory) -> None:
    with PanicButton(BUTTON, pin_factory=factory) as button:
        time.sleep(SETTLE)
        rec = watch(button)
        time.sleep(SETTLE)
        assert rec.names == []
        assert not button.is_pressed


def test_a_failing_handler_does_not_stop_later_events(
    factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    rec = Recorder()
    note = rec.hook("pressed")

    def broken() -> None:
        note()
        raise RuntimeError("handler bug")

    with caplog.at_level(logging.ERROR), PanicButton(BUTTON, pin_factory=factory) as button:
        button.when_pressed = broken
        button.when_released = rec.hook("released")
        pin = factory.pin(BUTTON)
        for count, drive in enumerate((pin.drive_low, pin.drive_high, pin.drive_low), 1):
            time.sleep(0.03)
            drive()
            assert rec.wait_for(count)
    assert rec.names == ["pressed", "released", "pressed"]
    assert any("handler bug" in (r.exc_text or "") for r in caplog.records)


def test_zero_debounce_reports_at_once(factory: MockFactory) -> None:
    with DebouncedInput(BUTTON, debounce_ms=0, pin_factory=factory) as contact:
        rec = Recorder()
        contact.when_activated = rec.hook("active")
        time.sleep(0.02)
        pressed_at = time.monotonic()
        factory.pin(BUTTON).drive_low()
        assert rec.wait_for(1)
        assert rec.events[0][1] - pressed_at < 0.015


def test_tamper_switch_reports_the_lid_opening(factory: MockFactory) -> None:
    pin = held_at_boot(factory, 5)  # lid shut holds the switch closed
    with TamperSwitch(5, pin_factory=factory) as tamper:
        rec = Recorder()
        tamper.when_activated = rec.hook("opened")
        tamper.when_deactivated = rec.hook("closed")
        time.sleep(SETTLE)
        assert not tamper.is_active and rec.names == []
        pin.drive_high()
        assert rec.wait_for(1)
        assert tamper.is_active and rec.names == ["opened"]


def test_tamper_switch_with_a_cut_wire_reads_open(factory: MockFactory) -> None:
    with TamperSwitch(5, pin_factory=factory) as tamper:  # pull-up, nothing pulls it low
        rec = Recorder()
        tamper.when_activated = rec.hook("opened")
        assert rec.wait_for(1)
        assert tamper.is_active


def test_lamp_sensor_reads_lit_while_its_output_pulls_low(factory: MockFactory) -> None:
    pin = held_at_boot(factory, 6)
    with LampSensor(6, pin_factory=factory) as lamp:
        rec = Recorder()
        lamp.when_activated = rec.hook("lit")
        lamp.when_deactivated = rec.hook("unlit")
        assert rec.wait_for(1)
        pin.drive_high()
        assert rec.wait_for(2)
        assert rec.names == ["lit", "unlit"] and not lamp.is_active


def test_close_is_idempotent_silences_events_and_frees_the_pin(factory: MockFactory) -> None:
    threads_before = threading.active_count()
    button = PanicButton(BUTTON, pin_factory=factory)
    rec = watch(button)
    time.sleep(0.03)
    button.close()
    button.close()
    assert threading.active_count() == threads_before
    factory.pin(BUTTON).drive_low()
    time.sleep(SETTLE)
    assert rec.names == []
    with PanicButton(BUTTON, pin_factory=factory) as again:  # the pin was released
        rec = watch(again)
        factory.pin(BUTTON).drive_high()  # no-op unless the new pull-up left it low
        factory.pin(BUTTON).drive_low()
        assert rec.wait_for(1)
