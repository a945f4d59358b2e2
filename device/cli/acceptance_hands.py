"""The hands-on steps of `safehouse accept`: the technician acts, the daemon's events answer.

Each step prompts (``>>> [tag]``) and waits for what the kiosk itself recorded after the
prompt — a ``panic``, an ``ack`` from the keypad, ``tamper``/``tamper_restored``,
``keypad_lost``/``keypad_restored`` — or, for the microphone (which raises no event between
alarms), the microphone's own state through the control socket. Nothing the technician says
counts as a pass: only ``s`` (skip) and ``f`` (it did not work) are taken from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safehouse.device.cli.acceptance import StepResult
from safehouse.device.cli.acceptance_console import Console, EventWatch, wait_for
from safehouse.device.core.errors import ControlError
from safehouse.device.core.events import Event
from safehouse.device.runtime.config import Config

Check = Callable[[], str | None]
STEPS = (("button", "panic button press and hold"), ("pin", "PIN typed on the keypad"),
         ("lid", "enclosure lid (tamper)"), ("keypad-replug", "keypad unplugged and replugged"),
         ("mic-replug", "microphone unplugged and replugged"))


class HandsOn:
    def __init__(self, config: Config, console: Console, step_timeout: float,
                 call: Callable[..., Any], watch: EventWatch) -> None:
        self.config, self.console, self._timeout = config, console, step_timeout
        self._call, self._watch = call, watch

    def steps(self) -> list[tuple[str, str, Callable[[], StepResult]]]:
        run = {"button": self._button, "pin": self._pin, "lid": self._lid,
               "keypad-replug": self._keypad_replug, "mic-replug": self._mic_replug}
        return [(name, title, run[name]) for name, title in STEPS]

    def _mark(self) -> int:
        """The daemon's newest event seq: a step looks only at events after it."""
        return int(self._call("status")["last_seq"])

    def _event(self, after: int, type_: str, **data: Any) -> Check:
        def check() -> str | None:
            if self._watch.error:
                raise ControlError(self._watch.error)
            found: Event | None = self._watch.find(after, lambda e: e.type == type_ and all(
                e.data.get(k) == v for k, v in data.items()))
            return None if found is None else f"{type_} event seq {found.seq} ({found.ts})"
        return check

    def _ask(self, tag: str, instruction: str, check: Check) -> tuple[str, str]:
        return wait_for(self.console, tag, instruction, self._timeout, check)

    def _pair(self, *prompts: tuple[str, str, Callable[[], Check]]) -> StepResult:
        """Prompts in turn (lid open/shut, cable out/in), each answered by what its check sees;
        a check is made just before its prompt, so it looks only at what happens after."""
        details = []
        for tag, instruction, make_check in prompts:
            status, detail = self._ask(tag, instruction, make_check())
            details.append(detail)
            if status != "pass":
                return StepResult("", "", status, f"{tag}: {detail}")
        return StepResult("", "", "pass", "; ".join(details))

    def _after(self, type_: str) -> Callable[[], Check]:
        return lambda: self._event(self._mark(), type_)

    def _button(self) -> StepResult:
        seen = self._event(self._mark(), "panic")

        def pressed_and_released() -> str | None:
            got = seen()
            if got is None or self._call("status")["button"]["pressed"]:
                return None
            return got + ", button released"
        return StepResult("", "", *self._ask(
            "button", "Press and HOLD the panic button for 3 s, then let go. This raises a REAL alarm "
            "(Contact ID 120): tell the precinct first. The acceptance ends it afterwards.",
            pressed_and_released))

    def _pin(self) -> StepResult:
        if self.config.keypad.port == "" and self.config.device.hardware == "pi":
            self._end_alarm()
            return StepResult("", "", "n/a", 'keypad.port = "": no keypad fitted')
        if self._call("status")["alarm"]["state"] == "idle":
            self._call("test-alarm")  # the button step raised none: give the PIN something to acknowledge
            self.console.say("    no alarm is active (the button step raised none): a TEST alarm was raised "
                             "for the PIN to acknowledge")
        mark, refused = self._mark(), self._call("status")["rejections"].get("keypad", 0)
        acked = self._event(mark, "ack", source="keypad")
        told = [False]

        def check() -> str | None:
            got = acked()
            now = self._call("status")["rejections"].get("keypad", 0)
            if got is None and now > refused and not told[0]:
                told[0] = True
                self.console.say("    the kiosk refused that entry (a PIN not enrolled?): try again with an "
                                 "enrolled volunteer's PIN (`safehouse volunteer list`)")
            return got
        try:
            status, detail = self._ask("pin", "Type an enrolled volunteer's PIN and then # on the keypad, "
                                       "to acknowledge the alarm.", check)
        finally:
            self._end_alarm()
        return StepResult("", "", status, detail)

    def _end_alarm(self) -> None:
        if self._call("status")["alarm"]["state"] != "idle":
            self._call("resolve", outcome="cancelled", by="acceptance")
            self.console.say("    the acceptance's alarm was resolved (outcome cancelled, by acceptance)")

    def _lid(self) -> StepResult:
        if self.config.gpio.tamper is None:
            return StepResult("", "", "n/a", "gpio.tamper is not set: no lid switch wired")
        return self._pair(("lid-open", "Open the enclosure lid.", self._after("tamper")),
                          ("lid-close", "Close the enclosure lid again.", self._after("tamper_restored")))

    def _keypad_replug(self) -> StepResult:
        if self.config.keypad.port == "" and self.config.device.hardware == "pi":
            return StepResult("", "", "n/a", 'keypad.port = "": no keypad fitted')
        return self._pair(("keypad-unplug", "Unplug the keypad's cable.", self._after("keypad_lost")),
                          ("keypad-replug", "Plug the keypad's cable back in.",
                           self._after("keypad_restored")))

    def _mic_replug(self) -> StepResult:
        mic = self.config.microphone
        if not mic.enabled:
            return StepResult("", "", "n/a", "microphone.enabled = false")
        if mic.pre_roll == 0:
            return StepResult("", "", "n/a", "microphone.pre_roll = 0: it is closed between alarms")

        def state(want_fault: bool) -> Check:
            def check() -> str | None:
                m = self._call("parts")["microphone"]
                if want_fault and m["fault"]:
                    return f"the kiosk noticed: {m['fault']}"
                if not want_fault and not m["fault"] and m["capturing"]:
                    return "the kiosk hears it again"
                return None
            return check
        return self._pair(("mic-unplug", "Unplug the microphone.", lambda: state(True)),
                          ("mic-replug", "Plug the microphone back in.", lambda: state(False)))
