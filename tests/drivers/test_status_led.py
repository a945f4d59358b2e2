"""The technician's link LED: each link state has its own rhythm on the pin."""

from __future__ import annotations

import itertools
import time

import pytest
from gpiozero.pins.mock import MockFactory

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.status_led import StatusLed

LED_PIN = 24


Spans = list[tuple[float, float]]


def on_spans(factory: MockFactory, link: str, seconds: float) -> tuple[Spans, float]:
    """Show ``link`` on a fresh LED and return (start, duration) of each lit stretch."""
    pin = factory.pin(LED_PIN)
    with StatusLed(LED_PIN, pin_factory=factory) as led:
        pin.clear_states()
        led.show(link)
        time.sleep(seconds)
        states = list(pin.states)
        last = pin.state
    t, spans, lit_since = 0.0, [], None
    for delta, state in states:
        t += delta
        if state and lit_since is None:
            lit_since = t
        elif not state and lit_since is not None:
            spans.append((lit_since, t - lit_since))
            lit_since = None
    if lit_since is not None:
        spans.append((lit_since, seconds - lit_since))
    return spans, float(last)


def test_starts_disabled_and_dark(factory: MockFactory) -> None:
    with StatusLed(LED_PIN, pin_factory=factory) as led:
        assert led.link == "disabled"
        assert factory.pin(LED_PIN).state == 0


def test_online_is_steady_on(factory: MockFactory) -> None:
    spans, last = on_spans(factory, "online", 0.4)
    assert len(spans) == 1 and spans[0][0] < 0.005 and last == 1.0


def test_disabled_is_off(factory: MockFactory) -> None:
    with StatusLed(LED_PIN, pin_factory=factory) as led:
        led.show("connecting")
        led.show("disabled")
        pin = factory.pin(LED_PIN)
        pin.clear_states()
        time.sleep(0.3)
        assert pin.state == 0 and len(pin.states) == 1
        assert led.link == "disabled"


def test_connecting_blinks_fast(factory: MockFactory) -> None:
    spans, _ = on_spans(factory, "connecting", 1.0)
    assert 3 <= len(spans) <= 5
    assert all(d == pytest.approx(0.125, abs=0.04) for _, d in spans[:-1])
    starts = [s for s, _ in spans]
    assert all(b - a == pytest.approx(0.25, abs=0.04) for a, b in itertools.pairwise(starts))


def test_offline_blinks_slowly(factory: MockFactory) -> None:
    spans, last = on_spans(factory, "offline", 1.2)
    assert len(spans) == 1, "a second flash came sooner than 2 s"
    assert spans[0][1] == pytest.approx(0.5, abs=0.05)
    assert last == 0.0


def test_unknown_link_is_refused(factory: MockFactory) -> None:
    with StatusLed(LED_PIN, pin_factory=factory) as led, pytest.raises(ValueError, match="online"):
        led.show("sleepy")


def test_close_is_idempotent_and_stops_the_blink(factory: MockFactory) -> None:
    led = StatusLed(LED_PIN, pin_factory=factory)
    led.show("connecting")
    time.sleep(0.05)
    led.close()
    led.close()
    pin = factory.pin(LED_PIN)
    assert pin.state == 0
    pin.clear_states()
    time.sleep(0.3)
    assert len(pin.states) == 1
    with pytest.raises(HardwareError):
        led.show("online")


def test_rollcall_flashes_until_answered_then_the_link_shows_again(factory: MockFactory) -> None:
    with StatusLed(LED_PIN, pin_factory=factory) as led:
        led.show("online")
        pin = factory.pin(LED_PIN)
        led.rollcall(True)
        led.show("offline")  # a link change during the roll-call does not hide it
        pin.clear_states()
        time.sleep(1.05)
        states = pin.states
        flashes = [s for prev, s in itertools.pairwise(states) if s.state and not prev.state]
        assert len(flashes) >= 2 and led.is_rollcall
        led.rollcall(False)
        pin.clear_states()
        time.sleep(0.3)
        assert not led.is_rollcall and len(pin.states) <= 2  # back to offline's slow blink
