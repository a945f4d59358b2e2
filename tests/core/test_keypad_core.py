"""The volunteer's keypad card through decide(), with a fake clock and a stand-in PIN checker."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safehouse.device.core.alarm import decide
from safehouse.device.core.effects import Beep, Effect, Emit, SetIndicator, SetLight, SetSound, VerifyPin
from safehouse.device.core.inputs import (
    ButtonChanged,
    Input,
    KeypadFlood,
    KeypadNoise,
    KeyPressed,
    PinChecked,
    RollcallStarted,
    Tick,
)
from safehouse.device.core.keypad_grammar import MAX_ENTRY
from safehouse.device.core.state import CoreState, Phase, Policy, initial_state
from safehouse.drivers.keypad_guard import FloodGuard

PINS = {"1234": ("v1", False), "9999": ("v1", True), "5678": ("v2", False)}  # 9999: v1's duress


class Kiosk:
    """Feeds keys like the keypad driver, answers VerifyPin like the verifier thread."""

    def __init__(self, **policy: Any) -> None:
        self.state: CoreState = initial_state(Policy(**policy), uuid.uuid4())
        self.now = 100.0
        self.effects: list[Effect] = []

    def feed(self, inp: Input) -> list[Effect]:
        self.state, out = decide(self.state, inp, self.now)
        self.effects += out
        for effect in [e for e in out if isinstance(e, VerifyPin)]:
            who, duress = PINS.get(effect.pin, (None, False))
            out += self.feed(PinChecked(effect.entry, effect.action, who, duress))
        return out

    def type(self, keys: str) -> list[Effect]:
        return [e for k in keys for e in self.feed(KeyPressed(k))]

    def wait(self, seconds: float) -> list[Effect]:
        self.now += seconds
        return self.feed(Tick())

    def events(self, type_: str | None = None) -> list[Emit]:
        return [e for e in self.effects if isinstance(e, Emit) and (type_ is None or e.type == type_)]


def test_pin_hash_acknowledges_with_the_volunteer_and_time_to_ack() -> None:
    k = Kiosk()
    k.feed(ButtonChanged(True))
    k.now += 7.5
    out = k.type("1234#")
    [ack] = k.events("ack")
    assert (ack.data["volunteer"], ack.data["time_to_ack_s"], ack.data["source"]) == ("v1", 7.5, "keypad")
    assert SetSound(None) in out and SetLight("acknowledged") in out and Beep("ok") in out


def test_the_card_codes_do_what_the_card_says() -> None:
    k = Kiosk()
    k.type("1234*1#")
    assert k.state.on_duty == {"v1"}
    k.type("1234*6#")
    k.type("5678*7#")
    k.feed(ButtonChanged(True))
    k.type("1234*5#")
    k.type("1234*2#")
    types = [e.type for e in k.events()]
    assert types == ["duty_on", "clue", "walk_in", "panic", "resolved", "duty_off"]
    assert k.events("resolved")[0].data["outcome"] == "police" and k.state.alarm is None
    assert k.events("walk_in")[0].data["volunteer"] == "v2"


def test_an_alarm_while_nobody_is_on_duty_escalates_at_once() -> None:
    k = Kiosk(escalate_unstaffed=True)
    k.feed(ButtonChanged(True))
    assert k.state.alarm is not None and k.state.alarm.phase is Phase.ESCALATED
    assert k.events("escalated")[0].data["reason"] == "nobody is on duty"
    k.feed(ButtonChanged(False))
    k.type("1234#")  # still acknowledged by whoever comes
    staffed = Kiosk(escalate_unstaffed=True)
    staffed.type("5678*1#")
    staffed.feed(ButtonChanged(True))
    assert staffed.state.alarm.phase is Phase.ACTIVE  # type: ignore[union-attr]


def test_five_wrong_pins_lock_the_keypad_for_60_s_then_120_s_and_a_right_pin_is_refused_meanwhile() -> None:
    k = Kiosk()
    k.feed(ButtonChanged(True))
    for _ in range(5):
        k.type("0000#")
    [lock] = k.events("keypad_lockout")
    assert lock.code == 461 and lock.data["locked_s"] == 60
    k.wait(59)
    out = k.type("1234#")
    assert not any(isinstance(e, VerifyPin) for e in out) and Beep("error") in out
    assert k.events("ack") == []
    k.wait(1)
    for _ in range(5):
        k.type("0000#")
    assert [e.data["locked_s"] for e in k.events("keypad_lockout")] == [60, 120]  # it doubles
    k.wait(120)
    k.type("1234#")
    assert len(k.events("ack")) == 1


def test_duress_looks_exactly_like_an_ack_on_the_kiosk_and_raises_a_silent_121() -> None:
    normal, duress = Kiosk(), Kiosk()
    for k, pin in ((normal, "1234"), (duress, "9999")):
        k.feed(ButtonChanged(True))
        k.now += 3
        k.type(pin + "#")
    local = (SetLight, SetSound, Beep)
    assert [e for e in normal.effects if isinstance(e, local)] == \
        [e for e in duress.effects if isinstance(e, local)]
    [silent] = duress.events("duress")
    assert silent.code == 121 and silent.data["volunteer"] == "v1"
    assert silent.data["alarm_id"] == duress.events("panic")[0].event_id and normal.events("duress") == []


def test_rollcall_answered_in_time_and_missed() -> None:
    k = Kiosk(rollcall_window=300)
    k.type("1234*1#")
    out = k.feed(RollcallStarted("precinct"))
    assert SetSound("rollcall") in out and SetIndicator(rollcall=True) in out
    k.now += 42
    out = k.type("1234*8#")
    [answer] = k.events("rollcall_answered")
    assert answer.data == {"volunteer": "v1", "response_s": 42.0, "source": "precinct"}
    assert SetSound(None) in out and SetIndicator(rollcall=False) in out
    k.feed(RollcallStarted("schedule"))
    k.wait(299)
    assert k.events("rollcall_missed") == []
    k.wait(1)
    [missed] = k.events("rollcall_missed")
    assert missed.data["on_duty"] == ["v1"]


def test_star_alone_clears_and_silence_forgets_a_partial_entry() -> None:
    k = Kiosk(entry_timeout=10)
    k.feed(ButtonChanged(True))
    k.type("12*")
    k.type("*")
    k.type("34#")  # "12" was cleared: "34" alone is not a PIN
    assert k.events("ack") == []
    k.type("12")
    k.wait(10)
    k.type("34#")
    assert k.events("ack") == [] and k.state.keypad.failures == 0  # malformed, not a wrong PIN
    k.type("1234#")
    assert len(k.events("ack")) == 1


def test_a_typed_pin_never_shows_in_a_repr() -> None:
    k = Kiosk()
    out = k.type("123")
    out += k.type("4#")
    assert "1234" not in repr(k.state) and "1234" not in repr(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("0123456789*#x")), max_size=60))
def test_no_key_stream_acts_without_a_valid_pin(keys: list[str]) -> None:
    k = Kiosk()
    k.feed(ButtonChanged(True))
    for key in keys:
        k.feed(KeyPressed(key))
    valid = {e.pin for e in k.effects if isinstance(e, VerifyPin)} & set(PINS)
    acted = [e for e in k.events() if e.type != "panic"]
    assert acted == [] or valid


# --- noise, floods and over-long entries: never a wrong PIN, never a lockout ---------------------

def test_an_entry_longer_than_the_limit_is_discarded_to_its_hash_and_never_checked() -> None:
    k = Kiosk()
    k.feed(ButtonChanged(True))
    out = k.type("1" * MAX_ENTRY + "1234#")  # the 25th key overflows; "1234#" is its tail
    assert not any(isinstance(e, VerifyPin) for e in out) and Beep("error") in out
    assert k.state.keypad.failures == 0 and k.state.keypad.rejected == 1
    k.type("1234#")  # the next entry is a fresh one
    assert len(k.events("ack")) == 1


def test_digits_without_end_are_one_rejection_and_bounded_state() -> None:
    k = Kiosk()
    for key in "7" * 20_000:  # the kind of stream that reached the core before the driver's guard
        k.state, _ = decide(k.state, KeyPressed(key), k.now)
    assert len(k.state.keypad.entry) <= MAX_ENTRY and k.state.keypad.rejected == 1
    assert k.state.keypad.failures == 0 and k.events("keypad_lockout") == []


def test_noise_inside_an_entry_discards_it_and_star_or_hash_starts_afresh() -> None:
    k = Kiosk()
    k.feed(ButtonChanged(True))
    k.type("12")
    out = k.feed(KeypadNoise(1))
    assert Beep("error") in out and k.state.keypad.discarding
    out = k.type("34#")  # "12?34#" is not a PIN attempt
    assert not any(isinstance(e, VerifyPin) for e in out) and k.state.keypad.failures == 0
    k.feed(KeypadNoise(3))
    k.type("*1234#")  # `*` clears a discarded entry like any other
    assert len(k.events("ack")) == 1


def test_noise_and_entries_in_any_order_never_lock_the_keypad() -> None:
    k = Kiosk(lockout_after=2)
    k.feed(ButtonChanged(True))
    for _ in range(50):
        k.type("9")
        k.feed(KeypadNoise(2))
        k.type("8765#")
    assert k.state.keypad.failures == 0 and k.events("keypad_lockout") == []


def test_a_flood_is_one_keypad_noise_fault_restored_after_a_quiet_minute() -> None:
    k = Kiosk()
    k.type("47")  # half an entry when the flood starts: dropped with it
    k.feed(KeypadFlood(True, "4096 keys within 1 s", 4096))
    [noise] = k.events("keypad_noise")
    assert noise.code == 344 and noise.data == {"reason": "4096 keys within 1 s", "discarded_bytes": 4096}
    assert k.state.keypad.entry == "" and k.events("keypad_lockout") == []
    k.wait(3)
    k.feed(KeypadFlood(False, "3.0 s", 1_000_000))
    k.wait(30)
    k.feed(KeypadFlood(True, "9 bytes that are not keys within 1 s", 20))  # again, within the minute
    k.feed(KeypadFlood(False, "1.0 s", 100_000))
    assert len(k.events("keypad_noise")) == 1
    k.type("1234#")  # not a lockout: the right PIN works as soon as keys arrive again
    assert k.events("keypad_noise_restored") == []
    k.wait(59.9)
    assert k.events("keypad_noise_restored") == []
    k.wait(0.1)
    [restored] = k.events("keypad_noise_restored")
    assert restored.code == 344
    assert restored.data == {"discarded_bytes": 4096 + 1_000_000 + 20 + 100_000, "noisy_s": 33.0}
    assert k.state.keypad.noisy_since is None


# --- the driver's flood guard, on a fake clock ------------------------------------------------------

def test_a_person_typing_passes_the_guard_and_a_flood_does_not() -> None:
    guard = FloodGuard(ignore_s=5.0)
    now = 0.0
    for _ in range(3):  # a fast volunteer: 8 keys a second, an entry every 2 s; and a line keypad
        for key in b"1234*1#":
            assert guard.feed(bytes([key]), now).items == (chr(key),)
            now += 0.125
        assert guard.feed(b"5678*9#\r\n", now).items == tuple("5678*9#")
        now += 1.2
    verdict = guard.feed(b"7" * 4096, now)
    assert verdict.items == () and verdict.flood == "4096 keys within 1 s"
    assert guard.feed(b"1#", now + 4.9).items == ()  # still noisy: the wait starts again
    assert guard.poll(now + 9.8) is None
    episode = guard.poll(now + 9.9)
    assert episode is not None and episode.discarded == 2 and guard.discarded == 4098
    assert guard.feed(b"4711#", now + 10).items == tuple("4711#")


@pytest.mark.parametrize(("chunks", "why"), [
    ([b"1#", b"2#", b"3#", b"4#"], "4 entries within 1 s"),
    ([b"\x00\xff\x13", b"A", b"\x1b[B\x00\x00"],
     "9 bytes that are not keys within 1 s (noise, or the wrong baud rate)"),
])
def test_the_guard_counts_over_a_sliding_second(chunks: list[bytes], why: str) -> None:
    guard = FloodGuard()
    verdicts = [guard.feed(chunk, 0.2 * i) for i, chunk in enumerate(chunks)]
    assert [v.flood for v in verdicts] == [None] * (len(chunks) - 1) + [why]
    slow = FloodGuard()
    assert all(slow.feed(chunk, 1.0 * i).flood is None for i, chunk in enumerate(chunks))


def test_noise_below_a_flood_passes_as_counts_between_the_keys() -> None:
    assert FloodGuard().feed(b"\x0012\xff\xfe3#\r\n", 0.0).items == (1, "1", "2", 2, "3", "#")
