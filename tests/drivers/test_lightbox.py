"""The light box as a citizen sees it: pin levels and their timing on gpiozero's mock pins."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from datetime import datetime
from datetime import time as clock_time

import pytest
from gpiozero import PWMLED
from gpiozero.pins.mock import MockFactory

from safehouse.device.core.errors import HardwareError
from safehouse.device.core.signals import LightPattern
from safehouse.drivers.lightbox import LightBox
from safehouse.drivers.patterns import PATTERNS, BrightnessSchedule
from tests.rig.pins import on_spans, timeline

RED, BLUE = 17, 27


def at(hour: int, minute: int = 0) -> Callable[[], datetime]:
    return lambda: datetime(2024, 6, 1, hour, minute)


NOON = at(12)  # every box gets a clock: the beacon dims at night, and CI runs at any hour


def record(factory: MockFactory, box: LightBox, name: str, seconds: float):
    red, blue = factory.pin(RED), factory.pin(BLUE)
    red.clear_states()
    blue.clear_states()
    t0 = time.monotonic()
    box.play(name)
    time.sleep(seconds)
    end = time.monotonic() - t0
    return timeline(red), timeline(blue), end


def test_alarm_alternates_red_and_blue_fast_at_full_brightness(factory: MockFactory) -> None:
    with LightBox(RED, BLUE, pin_factory=factory, clock=at(23)) as box:  # night: the alarm is never dimmed
        red, blue, end = record(factory, box, "alarm", 0.6)

    red_on, blue_on = on_spans(red, end), on_spans(blue, end)
    assert len(red_on) >= 3 and len(blue_on) >= 2
    starts = [start for start, _ in red_on]
    periods = [b - a for a, b in itertools.pairwise(starts)]
    assert max(periods) <= 0.25, f"red flashes fewer than 4 times a second: {periods}"
    for a, b in red_on:
        for c, d in blue_on:
            assert min(b, d) - max(a, c) < 0.001, "red and blue were on together"
    assert {level for _, level in red + blue} == {0.0, 1.0}


def test_help_coming_blinks_blue_alone_unlike_alarm(factory: MockFactory) -> None:
    with LightBox(RED, BLUE, pin_factory=factory, clock=NOON) as box:
        red, blue, end = record(factory, box, "help_coming", 1.2)

    assert all(level == 0.0 for _, level in red), "red must stay off"
    blue_on = on_spans(blue, end)
    assert len(blue_on) == 2
    assert blue_on[1][0] - blue_on[0][0] == pytest.approx(1.0, abs=0.05)
    assert blue_on[0][1] - blue_on[0][0] == pytest.approx(0.5, abs=0.05)


@pytest.mark.parametrize(
    ("hour", "schedule", "level"),
    [
        (12, None, 1.0),
        (23, None, 0.4),
        (6, None, 0.4),
        (7, None, 1.0),
        (3, BrightnessSchedule(day=0.8, night=0.2), 0.2),
        (18, BrightnessSchedule(day=0.8, night=0.2), 0.8),
    ],
)
def test_beacon_follows_day_and_night_brightness(
    factory: MockFactory, hour: int, schedule: BrightnessSchedule | None, level: float
) -> None:
    with LightBox(RED, BLUE, pin_factory=factory, schedule=schedule, clock=at(hour)) as box:
        box.play("beacon")
        assert factory.pin(RED).state == pytest.approx(level)
        assert factory.pin(BLUE).state == pytest.approx(level)
        assert box.value == pytest.approx((level, level))


def test_active_low_relay_board_inverts_pin_levels(factory: MockFactory) -> None:
    red, blue = factory.pin(RED), factory.pin(BLUE)
    with LightBox(RED, BLUE, active_high=False, pin_factory=factory, clock=at(12)) as box:
        assert (red.state, blue.state) == (1.0, 1.0)  # "off" holds the relays released
        box.play("beacon")
        assert (red.state, blue.state) == (0.0, 0.0)
        box.play("alarm")
        assert (red.state, blue.state) == (0.0, 1.0)
        assert box.value == (1.0, 0.0)


def test_unknown_pattern_is_refused_with_the_valid_names(factory: MockFactory) -> None:
    with LightBox(RED, BLUE, pin_factory=factory, clock=NOON) as box:
        box.play("beacon")
        with pytest.raises(ValueError, match="disco") as err:
            box.play("disco")
        assert all(name in str(err.value) for name in PATTERNS)
        assert box.pattern == "beacon"


def test_play_puts_the_first_step_on_the_pins_at_once(factory: MockFactory) -> None:
    red = factory.pin(RED)
    with LightBox(RED, BLUE, pin_factory=factory, clock=NOON) as box:
        red.clear_states()
        box.play("alarm")
        assert red.state == 1.0 and factory.pin(BLUE).state == 0.0
        changed_after = timeline(red)[1][0]
    assert changed_after < 0.003, f"red came on {changed_after * 1000:.1f} ms after play()"


def test_close_is_idempotent_turns_off_and_releases_the_pins(factory: MockFactory) -> None:
    threads_before = threading.active_count()
    red, blue = factory.pin(RED), factory.pin(BLUE)
    box = LightBox(RED, BLUE, pin_factory=factory, clock=NOON)
    box.play("alarm")
    time.sleep(0.05)
    box.close()
    box.close()
    assert (red.state, blue.state) == (0.0, 0.0)
    red.clear_states()
    time.sleep(0.25)
    assert len(red.states) == 1, "the player kept writing after close()"
    assert threading.active_count() == threads_before
    with pytest.raises(HardwareError):
        box.play("beacon")
    with LightBox(RED, BLUE, pin_factory=factory, clock=NOON) as again:  # pins were released
        again.play("beacon")
        assert red.state == 1.0


def test_failing_to_open_blue_releases_red(factory: MockFactory) -> None:
    with PWMLED(BLUE, pin_factory=factory):
        with pytest.raises(HardwareError, match="GPIO27") as err:
            LightBox(RED, BLUE, pin_factory=factory, clock=NOON)
        # While the error (and its traceback) lives, as when the daemon logs it, gpiozero's
        # garbage collection cannot be what frees the red pin.
        with LightBox(RED, 5, pin_factory=factory, clock=NOON) as box:
            box.play("alarm")
            assert factory.pin(RED).state == 1.0
        assert err.value.__traceback__ is not None


def test_every_light_pattern_the_core_can_ask_for_has_a_pattern() -> None:
    assert set(PATTERNS) == set(LightPattern)
    assert all(type(name) is LightPattern and p.name is name for name, p in PATTERNS.items())


def test_pattern_table_keeps_its_promises() -> None:
    assert set(PATTERNS) == {  # the names on the wire (status, cmd/light) are these strings
        "off", "beacon", "alarm", "acknowledged", "help_coming", "test", "neighbor"
    }
    assert [p.name for p in PATTERNS.values() if p.dimmable] == ["beacon"]
    assert max(max(s.red, s.blue) for s in PATTERNS["test"].steps) == 0.5
    assert sum(s.seconds for s in PATTERNS[LightPattern.NEIGHBOR].steps) == pytest.approx(1.5)
    assert all(s.red == 0 for s in PATTERNS["help_coming"].steps + PATTERNS["neighbor"].steps)
    looks = {p.steps for p in PATTERNS.values()}
    assert len(looks) == len(PATTERNS), "two patterns look the same"


@pytest.mark.parametrize(
    ("hhmm", "night"),
    [((18, 59), False), ((19, 0), True), ((0, 0), True), ((6, 59), True), ((7, 0), False)],
)
def test_schedule_night_wraps_past_midnight(hhmm: tuple[int, int], night: bool) -> None:
    schedule = BrightnessSchedule()
    assert schedule.level_at(clock_time(*hhmm)) == (0.4 if night else 1.0)
