"""The precinct's MQTT commands and neighbours' alliance alerts, inside ``decide()``.

A command is answered exactly once, whatever happens: a ``Reply`` effect carries either the
result or the reason it was refused, with the command's id whenever it could be read. A command
id, once executed, never executes again, whatever the clocks do (a broker may redeliver a QoS 1
message; an attacker may record and resend one): ids are kept by the sender's ``ts`` and refused
as ``replayed``, and a command no newer than the ids no longer kept as ``too_old``
(device/core/executed_commands.py). Before a command acts, a ``RememberCommand`` effect records
its id and ``ts`` durably (services/command_ids.py), and the daemon loads them back at start.
"""

from __future__ import annotations

from typing import Any

from safehouse.device.core import lifecycle
from safehouse.device.core.effects import RememberCommand, Reply, RunSelftest
from safehouse.device.core.inputs import AllianceAlert, PrecinctCommand, RollcallStarted
from safehouse.device.core.lifecycle import Step
from safehouse.device.core.precinct_commands import Command, CommandInvalid, parse, parse_alliance
from safehouse.device.core.ratelimit import clip, clip_text
from safehouse.device.core.rollcall import start_rollcall
from safehouse.device.core.signals import LightPattern


def on_precinct_command(step: Step, inp: PrecinctCommand, now: float) -> None:
    def reply(ok: bool, cid: str | None, result: dict[str, Any] | None = None, error: str = "") -> None:
        step.effects.append(Reply(inp.name, cid, ok, error or None, result or {},
                                  inp.response_topic, inp.correlation))
        if not ok:
            step.reject("command", clip_text(f"cmd/{clip(inp.name, 64)}: {error}", 400))

    policy = step.state.policy
    try:
        cmd = parse(inp.name, inp.payload, retain=inp.retain, wall=inp.wall,
                    clock_synced=inp.clock_synced, freshness=policy.command_freshness)
    except CommandInvalid as exc:
        reply(False, exc.id, error=str(exc))
        return
    executed = step.state.executed_commands
    refused = executed.refusal(cmd.id, cmd.ts)
    if refused is not None:
        reply(False, cmd.id, error=": ".join(refused))
        return
    step.update(executed_commands=executed.add(cmd.id, cmd.ts))
    step.effects.append(RememberCommand(cmd.id, cmd.ts))  # on disk before the command acts
    result, error = _execute(step, cmd, now)
    reply(error is None, cmd.id, result, error or "")


def _execute(step: Step, cmd: Command, now: float) -> tuple[dict[str, Any], str | None]:
    before = len(step.effects)

    def refusal() -> str:
        reasons = [e.reason for e in step.effects[before:] if hasattr(e, "reason")]
        return reasons[-1] if reasons else "refused"

    match cmd.name:
        case "ping":
            alarm = step.state.alarm
            return {"pong": True, "alarm": alarm.phase.value if alarm else "idle",
                    "light": step.state.light}, None
        case "ack":
            if lifecycle.precinct_ack(step, cmd.args["event_id"]):
                return {"alarm_id": cmd.args["event_id"], "light": LightPattern.HELP_COMING}, None
            return {}, refusal()
        case "resolve":
            alarm = step.state.alarm
            wanted = cmd.args.get("event_id")
            if alarm is not None and wanted is not None and wanted != alarm.event_id:
                return {}, f"the active alarm is {alarm.event_id}, not {wanted}"
            if lifecycle.resolve(step, cmd.args["outcome"], "precinct", now):
                return {"outcome": cmd.args["outcome"]}, None
            return {}, refusal()
        case "test":
            if step.state.alarm is not None:
                return {}, "an alarm is already active"
            return {"event_id": lifecycle.raise_alarm(step, now, test=True, source="precinct")}, None
        case "rollcall":
            if start_rollcall(step, RollcallStarted("precinct"), now):
                return {"window_s": step.state.policy.rollcall_window,
                        "on_duty": sorted(step.state.on_duty)}, None
            return {}, refusal()
        case "selftest":
            step.effects.append(RunSelftest("precinct"))
            return {"started": True, "result": "a selftest event follows"}, None
        case "light":
            minutes = float(cmd.args["minutes"])
            if minutes == 0:
                step.update(override=None)
                return {"override": None}, None
            step.update(override=(LightPattern(cmd.args["pattern"]), now + minutes * 60))
            return {"override": cmd.args["pattern"], "minutes": minutes}, None
    return {}, f"unknown command {cmd.name!r}"  # parse() already refuses these


def on_alliance_alert(step: Step, inp: AllianceAlert, now: float) -> None:
    if inp.retain:
        step.reject("alliance", "retained: a retained alliance alert is stale (alerts are never "
                    "retained): ignored")
        return
    try:
        device_id, _event_id = parse_alliance(inp.payload)
    except ValueError as exc:
        step.reject("alliance", f"malformed alliance alert: {exc}")
        return
    if device_id == step.state.policy.device_id:
        return  # our own alert, echoed back by the broker
    step.update(neighbor_until=now + step.state.policy.neighbor_seconds,
                neighbor_alerts=step.state.neighbor_alerts + 1)


def expire_displays(step: Step, now: float) -> None:
    """Drop a light override or a neighbour display whose time is up."""
    state = step.state
    if state.override is not None and now >= state.override[1]:
        step.update(override=None)
    if state.neighbor_until is not None and now >= state.neighbor_until:
        step.update(neighbor_until=None)


