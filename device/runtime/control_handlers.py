"""What the control socket can be asked, answered from the core loop's snapshots.

Handlers never change state themselves: they drive the (simulated) pins or submit an input
and wait until the core has applied it and its event is durable, so an "accepted" answer
means the alarm is on disk. Refusals carry the core's own reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard

from safehouse.device.core.alarm import OUTCOMES
from safehouse.device.core.clock import Clock
from safehouse.device.core.errors import HardwareError
from safehouse.device.core.inputs import (
    Input,
    ResolveRequested,
    TestAlarmRequested,
    VolunteerAck,
)
from safehouse.device.core.state import CoreState
from safehouse.device.core.status import alarm_view, status_view
from safehouse.device.runtime import acceptance_probe, acceptance_sim
from safehouse.device.runtime.effect_runner import EffectRunner
from safehouse.device.runtime.hardware import Hardware
from safehouse.device.runtime.loop import CoreLoop
from safehouse.device.runtime.selftest import process_identity
from safehouse.services.control import CommandRefused
from safehouse.services.control_lanes import CORE, PART, READ, on_lane
from safehouse.services.outbox import Outbox

CONFIRM_TIMEOUT = 3.0
MEMORY_ACK_WAIT = 2.0  # an alarm storage could not take: wait this long to say "delivered"
KEY_SETTLE = 0.3  # a PIN check takes tens of ms: `safehouse keys` then reports its outcome
MAX_HOLD = 600.0


class ControlHandlers:
    """The handler table for ``ControlServer`` (services/control.py): one handler per request
    the `safehouse` CLI sends over the control socket.

    Given the parts it answers from: the core loop, the effect runner (rejections, where an
    event stands), the hardware (the simulated pins), the outbox, the link's view, the capture
    parts, the self-test and the clock (a simulated one can jump).
    """

    def __init__(self, loop: CoreLoop, runner: EffectRunner, hardware: Hardware, outbox: Outbox, *,
                 static: Mapping[str, Any], link: Callable[[], Mapping[str, Any]],
                 capture_parts: Callable[[], Mapping[str, Any]],
                 selftest: Callable[[str], list[dict[str, Any]]], clock: Clock) -> None:
        self._clock = clock
        self._loop, self._runner, self._hw, self._outbox = loop, runner, hardware, outbox
        self._capture_parts = capture_parts
        self._selftest = selftest
        self._static, self._link = dict(static), link
        self._started = clock.mono()
        self._recorder = acceptance_probe.Recorder()

    def table(self) -> dict[str, Callable[[Mapping[str, Any]], Any]]:
        """Each handler on the lane of what it waits on (services/control_lanes.py): the core
        loop's answer, a part (camera, microphone, the self-test's checks), or neither (a read)."""
        return {
            "status": on_lane(READ, self.status),
            "press": on_lane(CORE, self.press),
            "release": on_lane(CORE, self.release),
            "keys": on_lane(CORE, self.keys),
            "test-alarm": on_lane(CORE, self.test_alarm),
            "ack": on_lane(CORE, self.ack),
            "resolve": on_lane(CORE, self.resolve),
            "outbox": on_lane(READ, self.outbox),
            "simulate": on_lane(READ, self.simulate),
            "selftest": on_lane(PART, self.selftest),
            "snapshots": on_lane(PART, self.snapshots),
            "record": on_lane(READ, self.record),
            "parts": on_lane(READ, self.parts),
        }

    def status(self, _req: Mapping[str, Any]) -> dict[str, Any]:
        now = self._clock.mono()
        view = status_view(self._loop.state, self._runner, self._static, light=self._hw.light.pattern,
                           uptime=now - self._started, now=now, link=self._link(),
                           outbox=self._outbox.stats().as_dict())
        view["microphone"] = self._microphone()
        return view

    def _microphone(self) -> dict[str, Any]:
        """Which device, its native rate and the rate it is opened at (a 48 kHz-only USB mic is
        resampled), its stalls and overflows: drivers/microphone.py ``describe()``."""
        mic = self._capture_parts().get("microphone")
        if mic is None:  # microphone.enabled = false, or it could not be set up (the journal says why)
            return {"enabled": False}
        return {"enabled": True, **mic.describe()}

    def simulate(self, req: Mapping[str, Any]) -> dict[str, Any]:
        """Sim only: break or mend a simulated part, for end-to-end tests and chaos runs."""
        if not self._hw.simulated:
            raise CommandRefused("simulate works on simulated hardware only")
        part, fault = req.get("part"), req.get("fault")
        if part == "core":
            seconds = req.get("seconds", 10)
            if fault != "hang" or not _is_number(seconds) or not 0 < seconds <= 300:
                raise CommandRefused("core takes fault 'hang' and 0 < seconds <= 300")
            self._loop.stall(float(seconds))
            return {"part": part, "fault": fault, "seconds": seconds}
        if part == "clock":
            return self._jump_clock(fault, req.get("seconds", 0))
        if part in ("lid", "keypad", "microphone"):
            return self._simulate_technician(str(part), fault)
        camera = self._capture_parts().get("camera") if part == "camera" else None
        if camera is None or not hasattr(camera, "fail"):
            raise CommandRefused("part must be 'camera' (with camera.enabled = true)")
        if fault not in ("raise", "hang", "none"):
            raise CommandRefused("fault must be raise, hang or none")
        camera.fail = None if fault == "none" else fault
        return {"part": part, "fault": fault}

    def _simulate_technician(self, part: str, fault: object) -> dict[str, Any]:
        """What `safehouse accept` asks a technician to do by hand: open the lid, pull cables."""
        actions = {"lid": ("open", "close"), "keypad": ("unplug", "replug"),
                   "microphone": ("unplug", "replug")}[part]
        if fault not in actions:
            raise CommandRefused(f"{part} takes {' or '.join(actions)}")
        try:
            if part == "lid":
                self._hw.lid(fault == "open")
            elif fault == "unplug":
                acceptance_sim.unplug(part)
            else:
                acceptance_sim.replug(part)
            if part == "keypad" and self._hw.keypad is not None:
                self._hw.keypad.wake()  # its idle read has no timeout: let it see the cable now
        except HardwareError as exc:
            raise CommandRefused(str(exc)) from exc
        return {"part": part, "fault": fault, "unplugged": acceptance_sim.unplugged()}

    def snapshots(self, req: Mapping[str, Any]) -> dict[str, Any]:
        """`safehouse accept`: ``count`` snapshots through the alarm camera, real JPEG sizes."""
        count, timeout = req.get("count", 3), req.get("per_shot", 5.0)
        whole = isinstance(count, int) and not isinstance(count, bool)
        if not whole or not _is_number(timeout) or not 0 < timeout <= 60:
            raise CommandRefused("count must be an integer and 0 < per_shot <= 60 (seconds)")
        try:
            return acceptance_probe.snapshots(self._capture_parts().get("camera"), count, float(timeout))
        except ValueError as exc:
            raise CommandRefused(str(exc)) from exc

    def record(self, req: Mapping[str, Any]) -> dict[str, Any]:
        """`safehouse accept`: record ``seconds`` through the alarm microphone, overflows counted,
        in the background; ``{"poll": true}`` asks for the result."""
        if req.get("poll"):
            return self._recorder.poll()
        seconds = req.get("seconds", 60.0)
        if not _is_number(seconds):
            raise CommandRefused("seconds must be a number")
        try:
            return self._recorder.start(self._capture_parts().get("microphone"), float(seconds))
        except ValueError as exc:
            raise CommandRefused(str(exc)) from exc

    def parts(self, _req: Mapping[str, Any]) -> dict[str, Any]:
        """The microphone's and keypad's state, polled while a technician replugs them."""
        return acceptance_probe.parts(self._capture_parts(), self._hw.keypad)

    def _jump_clock(self, fault: object, seconds: object) -> dict[str, Any]:
        jump = getattr(self._clock, "jump", None)
        if jump is None or fault not in ("jump", "none"):
            raise CommandRefused("clock takes fault 'jump' (with seconds) or 'none'")
        if fault == "jump" and (not _is_number(seconds) or not seconds):
            raise CommandRefused("clock jump needs non-zero seconds, e.g. 3600 or -3600")
        try:
            offset = jump(float(seconds) if fault == "jump" and _is_number(seconds) else 0.0)
        except (ValueError, OSError) as exc:
            raise CommandRefused(str(exc)) from exc
        return {"part": "clock", "fault": fault, "offset_s": offset}

    def selftest(self, _req: Mapping[str, Any]) -> dict[str, Any]:
        checks = self._selftest("technician")
        return {"ok": all(c["ok"] for c in checks), "checks": checks, "ran_as": process_identity()}

    def outbox(self, _req: Mapping[str, Any]) -> dict[str, Any]:
        return self._outbox.stats().as_dict()

    def press(self, req: Mapping[str, Any]) -> dict[str, Any]:
        hold = req.get("hold")
        if hold is not None and (not _is_number(hold) or not 0 <= hold <= MAX_HOLD):
            raise CommandRefused(f"hold must be a number of seconds between 0 and {MAX_HOLD:g}")
        policy = self._loop.state.policy
        if policy.trigger == "hold" and (hold is None or 0 < hold < policy.hold_seconds):
            raise CommandRefused("button.trigger is 'hold': use --hold SECONDS with at least "
                                 f"{policy.hold_seconds:g} s (or 0 to hold until release)")
        if self._loop.state.button.pressed:
            raise CommandRefused("the button is already held down: `safehouse release` first")
        before = self._loop.state.alarms_raised
        try:
            self._hw.press()
        except HardwareError as exc:
            raise CommandRefused(str(exc)) from exc
        state = self._loop.wait_until(lambda s, _n: s.button.pressed, CONFIRM_TIMEOUT)
        if state is not None and policy.trigger == "hold" and hold:
            state = self._loop.wait_until(lambda s, _n: s.alarms_raised > before or not s.button.pressed,
                                          policy.hold_seconds + CONFIRM_TIMEOUT)
        if hold is None:
            self._hw.release()  # a full press: answer once the release is confirmed too
            self._loop.wait_until(lambda s, _n: not s.button.pressed, CONFIRM_TIMEOUT)
        elif hold > 0:
            self._hw.release_after(float(hold))
        if state is None:
            raise CommandRefused(f"the press was not confirmed within {CONFIRM_TIMEOUT:g} s")
        return self._accepted(state, new=state.alarms_raised > before)

    def release(self, _req: Mapping[str, Any]) -> dict[str, Any]:
        try:
            self._hw.release()
        except HardwareError as exc:
            raise CommandRefused(str(exc)) from exc
        state = self._loop.wait_until(lambda s, _n: not s.button.pressed, CONFIRM_TIMEOUT)
        if state is None:
            raise CommandRefused(f"the release was not confirmed within {CONFIRM_TIMEOUT:g} s")
        return {"released": True}

    def keys(self, req: Mapping[str, Any]) -> dict[str, Any]:
        """Type on the simulated keypad; the real serial driver reads them back."""
        text = req.get("keys")
        if not isinstance(text, str) or not text or len(text) > 64:
            raise CommandRefused("keys must be 1-64 keys of 0-9 * #")
        before, refused = self._loop.processed, self._runner.rejections["keypad"]
        try:
            self._hw.type_keys(text)
        except HardwareError as exc:
            raise CommandRefused(str(exc)) from exc
        # let the driver deliver the keys, and the PIN check (if any) come back
        self._loop.wait_until(lambda _s, n: n >= before + len(text), CONFIRM_TIMEOUT)
        time.sleep(KEY_SETTLE)
        state = self._loop.state
        rejected = self._runner.rejections["keypad"] - refused
        return {"sent": len(text), "entry_length": len(state.keypad.entry), "rejected": rejected,
                "locked_for_s": _locked_for(state, self._clock.mono()), "on_duty": sorted(state.on_duty),
                "last_rejection": self._runner.last_rejection.get("keypad") if rejected else None}

    def test_alarm(self, _req: Mapping[str, Any]) -> dict[str, Any]:
        before = self._loop.state.alarms_raised
        state = self._submit(TestAlarmRequested("cli"), refusal="test_alarm")
        return self._accepted(state, new=state.alarms_raised > before)

    def ack(self, req: Mapping[str, Any]) -> dict[str, Any]:
        by = _text(req, "by", "technician")
        state = self._submit(VolunteerAck(volunteer=by, source="cli"), refusal="ack")
        return {"alarm": alarm_view(state, self._clock.mono())}

    def resolve(self, req: Mapping[str, Any]) -> dict[str, Any]:
        outcome = _text(req, "outcome", "")
        if outcome not in OUTCOMES:
            raise CommandRefused(f"outcome must be one of {', '.join(OUTCOMES)}")
        self._submit(ResolveRequested(outcome=outcome, by=_text(req, "by", "technician")),
                     refusal="resolve")
        return {"resolved": True, "outcome": outcome}

    def _submit(self, inp: Input, refusal: str = "") -> CoreState:
        before = self._runner.rejections[refusal]
        state = self._loop.submit(inp, CONFIRM_TIMEOUT)
        if state is None:
            raise CommandRefused(f"the core did not apply the request within {CONFIRM_TIMEOUT:g} s")
        if refusal and self._runner.rejections[refusal] > before:
            raise CommandRefused(self._runner.last_rejection.get(refusal, "refused"))
        return state

    def _accepted(self, state: CoreState, *, new: bool) -> dict[str, Any]:
        """Accepted, and where the alarm stands: durable, sent from memory, or delivered (why)."""
        record, why = "durable", "written to the outbox on disk"
        if state.alarm is not None:
            event_id = state.alarm.event_id
            if self._runner.writer.record_of(event_id)[0] != "durable":  # storage failing
                self._runner.writer.memory.wait_acked(event_id, MEMORY_ACK_WAIT)
            record, why = self._runner.writer.record_of(event_id, str(self._link().get("state", "")))
        return {"accepted": True, "new_alarm": new, "durable": record == "durable", "record": record,
                "why": why, "alarm": alarm_view(state, self._clock.mono())}


def _locked_for(state: CoreState, now: float) -> float:
    until = state.keypad.locked_until
    return round(max(0.0, until - now), 1) if until is not None else 0.0


def _text(req: Mapping[str, Any], key: str, default: str) -> str:
    value = req.get(key, default)
    if not isinstance(value, str) or len(value) > 64:
        raise CommandRefused(f"{key} must be a string of at most 64 characters")
    return value


def _is_number(value: object) -> TypeGuard[int | float]:
    """A JSON number: bool is an int in Python, but ``true`` is not 1 second."""
    return isinstance(value, int | float) and not isinstance(value, bool)
