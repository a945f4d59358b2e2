"""The buzzer as a volunteer hears it: pin levels and their timing on gpiozero's mock pins."""

from __future__ import annotations

import statistics
import time

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from gpiozero.tones import Tone

from safehouse.device.core.errors import HardwareError
from safehouse.device.core.signals import REPEATING, Sound
from safehouse.drivers import buzzer as buzzer_module
from safehouse.drivers.buzzer import SOUNDS, Beep, Buzzer
from tests.rig.pins import on_spans, timeline

PIN = 22
KINDS = pytest.mark.parametrize("tonal", [False, True], ids=["plain", "tonal"])


class NotePin(MockPWMPin):  # type: ignore[misc]
    """A mock PWM pin that also remembers every frequency it was set to, with the time."""

    def __init__(self, factory: MockFactory, info: object) -> None:
        super().__init__(factory, info)
        self.notes: list[tuple[float, float | None]] = []

    def _set_frequency(self, value: float | None) -> None:
        super()._set_frequency(value)
        self.notes.append((time.monotonic(), value))


def listen(factory: MockFactory, buzzer: Buzzer, sound: str | None, seconds: float) -> tuple[
    list[tuple[float, float]], float
]:
    """Play ``sound`` (None: just listen) and record the pin for ``seconds``."""
    pin = factory.pin(PIN)
    pin.clear_states()
    t0 = time.monotonic()
    if sound is not None:
        buzzer.play(sound)
    time.sleep(seconds)
    return on_spans(timeline(pin), time.monotonic() - t0), time.monotonic() - t0


@KINDS
def test_click_is_one_short_pulse(factory: MockFactory, tonal: bool) -> None:
    with Buzzer(PIN, pin_factory=factory, tonal=tonal) as buzzer:
        spans, _ = listen(factory, buzzer, "click", 0.25)
        assert buzzer.sound is None, "a click is not a repeating sound"
    assert len(spans) == 1, spans
    (start, stop), = spans
    assert start < 0.005
    assert 0.02 <= stop - start <= 0.08, f"click lasted {stop - start:.3f} s"


@KINDS
def test_error_is_three_short_pulses(factory: MockFactory, tonal: bool) -> None:
    with Buzzer(PIN, pin_factory=factory, tonal=tonal) as buzzer:
        spans, _ = listen(factory, buzzer, "error", 0.8)
    assert len(spans) == 3, spans
    assert all(0.05 <= b - a <= 0.2 for a, b in spans), spans


def test_ok_is_a_rising_chirp_on_a_tonal_buzzer() -> None:
    factory = MockFactory(pin_class=NotePin)
    try:
        with Buzzer(PIN, pin_factory=factory, tonal=True) as buzzer:
            pin = factory.pin(PIN)
            pin.notes.clear()
            buzzer.play("ok")
            time.sleep(0.4)
        heard = [f for _, f in pin.notes if f is not None]
        assert len(heard) == 3 and heard == sorted(heard) and heard[0] < heard[-1], pin.notes
    finally:
        factory.close()


@KINDS
def test_chime_repeats_until_stop(factory: MockFactory, tonal: bool) -> None:
    with Buzzer(PIN, pin_factory=factory, tonal=tonal) as buzzer:
        cycle = sum(b.on + b.off for b in SOUNDS["chime"])
        spans, _ = listen(factory, buzzer, "chime", cycle + 0.07)  # into the second chime's 1st beep
        assert buzzer.sound == "chime"
        assert len(spans) == 4, f"the chime did not repeat: {spans}"
        assert all(b - a < 0.3 for a, b in spans[:3])
        pause = spans[3][0] - spans[2][1]
        assert 1.8 <= pause <= 2.3, f"pause between chimes {pause:.2f} s"

        buzzer.stop()
        assert buzzer.sound is None
        assert factory.pin(PIN).state == 0, "stop() must silence at once"
        spans, _ = listen(factory, buzzer, None, 0.7)  # where the 2nd and 3rd beeps would sound
        assert spans == [], "the chime went on after stop()"


def test_click_during_the_chime_does_not_end_it_or_shift_its_rhythm(factory: MockFactory) -> None:
    with Buzzer(PIN, pin_factory=factory) as buzzer:
        pin = factory.pin(PIN)
        pin.clear_states()
        t0 = time.monotonic()
        buzzer.play("chime")
        time.sleep(1.0)  # in the pause after the first three beeps
        buzzer.play("click")
        assert buzzer.sound == "chime"
        time.sleep(1.75)  # into the second chime (at 2.65 s)
        spans = on_spans(timeline(pin), time.monotonic() - t0)
    assert len(spans) >= 5, spans
    click = spans[3]
    assert 0.95 <= click[0] <= 1.1 and click[1] - click[0] < 0.08, f"no click heard: {spans}"
    cycle = sum(b.on + b.off for b in SOUNDS["chime"])
    assert abs(spans[4][0] - cycle) < 0.05, f"second chime at {spans[4][0]:.3f} s, expected {cycle:.2f}"


def test_click_during_a_chime_beep_changes_the_note_then_the_chime_resumes() -> None:
    factory = MockFactory(pin_class=NotePin)
    try:
        with Buzzer(PIN, pin_factory=factory, tonal=True) as buzzer:
            pin = factory.pin(PIN)
            buzzer.play("chime")
            time.sleep(0.05)  # inside the first beep
            pin.notes.clear()
            buzzer.play("click")
            time.sleep(0.06)
            notes = [f for _, f in pin.notes]
            assert buzzer.sound == "chime"
        chime, click = Tone(SOUNDS["chime"][0].note).frequency, Tone(SOUNDS["click"][0].note).frequency
        assert notes[:2] == [click, chime], notes
    finally:
        factory.close()


def test_stop_ends_the_chime_but_lets_a_short_sound_finish(factory: MockFactory) -> None:
    with Buzzer(PIN, pin_factory=factory) as buzzer:
        buzzer.play("chime")
        time.sleep(0.5)  # in the pause
        buzzer.play("ok")  # the volunteer's PIN was accepted ...
        buzzer.stop()  # ... which also ends the alarm chime
        assert buzzer.sound is None
        spans, _ = listen(factory, buzzer, None, 0.5)
    ok = sum(b.on + b.off for b in SOUNDS["ok"])
    assert len(spans) == 1 and abs(spans[0][1] - ok) < 0.03, f"the ok chirp was cut short: {spans}"


def test_rollcall_replaces_the_chime(factory: MockFactory) -> None:
    with Buzzer(PIN, pin_factory=factory) as buzzer:
        buzzer.play("chime")
        spans, _ = listen(factory, buzzer, "rollcall", 1.2)
        assert buzzer.sound == "rollcall"
    assert len(spans) == 2, spans
    assert all(b - a >= 0.35 for a, b in spans), f"not the roll call's long tones: {spans}"


@KINDS
def test_a_disabled_sound_changes_no_pin(factory: MockFactory, tonal: bool) -> None:
    with Buzzer(PIN, pin_factory=factory, tonal=tonal, enabled={"click": False}) as buzzer:
        pin = factory.pin(PIN)
        pin.clear_states()
        buzzer.play("click")
        time.sleep(0.1)
        assert len(pin.states) == 1, f"a disabled click reached the pin: {pin.states}"
        spans, _ = listen(factory, buzzer, "error", 0.6)
        assert len(spans) == 3, "other sounds must still play"


@KINDS
def test_play_reaches_the_pin_within_a_millisecond(factory: MockFactory, tonal: bool) -> None:
    latencies = []
    with Buzzer(PIN, pin_factory=factory, tonal=tonal) as buzzer:
        pin = factory.pin(PIN)
        for _ in range(25):
            while pin.state:  # the previous click is still sounding
                time.sleep(0.002)
            time.sleep(0.005)  # keys come >= 50 ms apart: the player is idle by then
            cleared = time.monotonic()
            pin.clear_states()
            buzzer.play("click")
            returned = time.monotonic()
            assert len(pin.states) > 1, "play() returned before the first level reached the pin"
            first_change = pin.states[1].timestamp  # seconds after clear_states()
            # clear_states() ran after ``cleared`` and before play(), so the change happened in
            # [cleared + first_change, play() + first_change]: first_change bounds the latency.
            assert cleared + first_change <= returned, "the first level was not written by play()"
            latencies.append(first_change)
    median = statistics.median(latencies)
    print(f"play() -> pin: median {median * 1e6:.0f} us, max {max(latencies) * 1e6:.0f} us")
    assert median < 0.001, f"median play() -> pin latency {median * 1000:.3f} ms"


def test_every_sound_the_core_can_ask_for_has_a_tune() -> None:
    assert set(SOUNDS) == set(Sound) and all(type(name) is Sound for name in SOUNDS)
    assert sorted(REPEATING) == ["chime", "rollcall"]  # the others play once


def test_every_note_of_every_tune_is_a_tone_and_a_bad_one_stops_the_buzzer_opening(
        factory: MockFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """SOUNDS is built on import without gpiozero, so its notes are checked when a buzzer opens."""
    assert all(Tone(b.note) for beeps in SOUNDS.values() for b in beeps if b.note is not None)
    monkeypatch.setattr(buzzer_module, "SOUNDS", {**SOUNDS, Sound.CLICK: (Beep(0.03, 0.0, "H9"),)})
    with pytest.raises(ValueError, match="H9"):
        Buzzer(PIN, pin_factory=factory)
    monkeypatch.undo()
    Buzzer(PIN, pin_factory=factory).close()  # refused before it claimed the pin


def test_unknown_sounds_are_refused_naming_the_valid_ones(factory: MockFactory) -> None:
    with Buzzer(PIN, pin_factory=factory) as buzzer, pytest.raises(ValueError, match="chime, click"):
        buzzer.play("siren")
    with pytest.raises(ValueError, match="clik"):
        Buzzer(PIN, pin_factory=factory, enabled={"clik": False})


def test_close_silences_and_is_idempotent(factory: MockFactory) -> None:
    buzzer = Buzzer(PIN, pin_factory=factory)
    buzzer.play("chime")
    assert factory.pin(PIN).state == 1
    buzzer.close()
    buzzer.close()
    assert factory.pin(PIN).state == 0
    with pytest.raises(HardwareError):
        buzzer.play("click")
