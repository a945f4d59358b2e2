"""Precinct commands through decide(): each answered once, the bad ones refused with a reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from safehouse.device.core.alarm import decide
from safehouse.device.core.effects import Emit, Reply, SetLight
from safehouse.device.core.executed_commands import ExecutedCommands
from safehouse.device.core.inputs import AllianceAlert, ButtonChanged, PrecinctCommand, Tick
from safehouse.device.core.precinct_commands import MAX_PAYLOAD
from safehouse.device.core.state import CoreState, Policy, initial_state

WALL = 1_800_000_000.0


def ts(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(WALL + offset, UTC).isoformat().replace("+00:00", "Z")


def cmd(name: str, body: dict[str, Any] | bytes, *, retain: bool = False, synced: bool = True,
        response: str | None = None) -> PrecinctCommand:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return PrecinctCommand(name, payload, retain, WALL, synced, response, b"corr" if response else None)


def fresh() -> CoreState:
    return initial_state(Policy(device_id="SH-1", neighbor_seconds=120), uuid.uuid4())


def run(state: CoreState, inp: Any, now: float = 100.0) -> tuple[CoreState, Reply, list[Any]]:
    state, effects = decide(state, inp, now)
    replies = [e for e in effects if isinstance(e, Reply)]
    assert len(replies) == 1, effects
    return state, replies[0], effects


def test_ping_answers_with_the_alarm_state() -> None:
    _, reply, _ = run(fresh(), cmd("ping", {"id": "c1", "ts": ts()}, response="resp/t"))
    assert reply.ok and reply.id == "c1" and reply.result["pong"] is True
    assert reply.response_topic == "resp/t" and reply.correlation == b"corr"


def test_precinct_ack_switches_the_light_to_help_coming() -> None:
    state, _ = decide(fresh(), ButtonChanged(True), 50.0)
    alarm_id = state.alarm.event_id  # type: ignore[union-attr]
    state, reply, effects = run(state, cmd("ack", {"id": "c2", "ts": ts(), "event_id": alarm_id}))
    assert reply.ok and SetLight("help_coming") in effects
    assert any(isinstance(e, Emit) and e.type == "help_coming" for e in effects)
    _, reply, _ = run(state, cmd("ack", {"id": "c3", "ts": ts(), "event_id": "nope"}))
    assert not reply.ok and "no active alarm with event_id nope" in (reply.error or "")


def test_a_repeated_command_id_never_acts_twice() -> None:
    state, reply, effects = run(fresh(), cmd("test", {"id": "same", "ts": ts()}))
    assert reply.ok and sum(isinstance(e, Emit) for e in effects) == 1
    state, _ = decide(state, cmd("resolve", {"id": "r", "ts": ts(), "outcome": "cancelled"}), 101.0)
    _, reply, effects = run(state, cmd("test", {"id": "same", "ts": ts()}))
    assert not reply.ok and (reply.error or "").startswith("replayed") and reply.id == "same"
    assert not any(isinstance(e, Emit) for e in effects)


def test_envelope_faults_are_refused_with_their_reason() -> None:
    cases = [
        (cmd("ping", b"not json"), "not valid UTF-8 JSON"),
        (cmd("ping", b"[1]"), "must be a JSON object"),
        (cmd("ping", {"ts": ts()}), "id must be"),
        (cmd("ping", {"id": "x", "ts": ts(-3600)}), "old"),
        (cmd("ping", {"id": "x", "ts": "yesterday"}), "RFC 3339"),
        (cmd("ping", {"id": "x", "ts": ts()}, retain=True), "retained"),
        (cmd("selfdestruct", {"id": "x", "ts": ts()}), "unknown command"),
        (cmd("ping", b"{" + b" " * MAX_PAYLOAD + b"}"), "limit"),
        (cmd("light", {"id": "x", "ts": ts(), "pattern": "disco", "minutes": 5}), "pattern must be"),
        (cmd("light", {"id": "x", "ts": ts(), "pattern": "off", "minutes": True}), "minutes"),
        (cmd("ack", {"id": "x", "ts": ts(), "event_id": "e", "extra": 1}), "unknown field"),
    ]
    for inp, reason in cases:
        _, reply, effects = run(fresh(), inp)
        assert not reply.ok and reason in (reply.error or ""), (inp, reply)
        assert not any(isinstance(e, Emit | SetLight) for e in effects)


def test_an_old_command_is_accepted_while_the_clock_is_not_synced() -> None:
    _, reply, _ = run(fresh(), cmd("ping", {"id": "x", "ts": ts(-3600)}, synced=False))
    assert reply.ok


def test_light_override_lasts_its_minutes_and_never_hides_an_alarm() -> None:
    state, reply, effects = run(fresh(), cmd("light", {"id": "l", "ts": ts(), "pattern": "off",
                                                       "minutes": 1}))
    assert reply.ok and SetLight("off") in effects
    pressed, _ = decide(state, ButtonChanged(True), 110.0)
    assert pressed.light == "alarm"
    later, effects = decide(state, Tick(), 160.0)
    assert later.light == "beacon" and SetLight("beacon") in effects


def test_alliance_alerts_from_neighbours_show_for_a_while_and_our_own_are_ignored() -> None:
    mine = json.dumps({"device_id": "SH-1", "event_id": "e"}).encode()
    theirs = json.dumps({"device_id": "SH-2", "event_id": "e"}).encode()
    state, effects = decide(fresh(), AllianceAlert(mine), 10.0)
    assert state.light == "beacon"
    state, effects = decide(state, AllianceAlert(theirs), 10.0)
    assert SetLight("neighbor") in effects
    state, effects = decide(state, Tick(), 130.0)
    assert SetLight("beacon") in effects
    state, effects = decide(state, AllianceAlert(b"garbage"), 131.0)
    assert state.light == "beacon" and not any(isinstance(e, SetLight) for e in effects)


def test_a_real_alarm_announces_itself_to_the_alliance_but_a_test_does_not() -> None:
    from safehouse.device.core.effects import Announce

    _, effects = decide(fresh(), ButtonChanged(True), 1.0)
    assert any(isinstance(e, Announce) for e in effects)
    _, _reply, effects = run(fresh(), cmd("test", {"id": "t", "ts": ts()}))
    assert not any(isinstance(e, Announce) for e in effects)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                           | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"id": st.one_of(st.text(max_size=70), st.integers()),
                           "ts": st.one_of(st.just(ts()), st.text(max_size=30)),
                           "event_id": st.text(max_size=10), "outcome": st.text(max_size=12),
                           "pattern": st.text(max_size=10),
                           "minutes": st.one_of(st.integers(), st.floats(allow_nan=False))})
    .map(lambda d: json.dumps(d).encode()),
)


@settings(max_examples=2500, deadline=None)
@given(name=st.sampled_from(["ack", "resolve", "test", "light", "ping", "x", "", "cmd/../x"]),
       body=bodies, retain=st.booleans())
def test_fuzz_every_command_gets_exactly_one_answer_and_never_crashes(name: str, body: bytes,
                                                                       retain: bool) -> None:
    _state, effects = decide(fresh(), PrecinctCommand(name, body, retain, WALL, True), 5.0)
    replies = [e for e in effects if isinstance(e, Reply)]
    assert len(replies) == 1
    if not replies[0].ok:
        assert replies[0].error and not any(isinstance(e, Emit) for e in effects)


def test_cmd_selftest_starts_a_selftest_off_the_loop_and_answers_at_once() -> None:
    from safehouse.device.core.effects import RunSelftest

    _, reply, effects = run(fresh(), cmd("selftest", {"id": "st", "ts": ts()}))
    assert reply.ok and reply.result["started"] is True
    assert RunSelftest("precinct") in effects


# --- issue 12: replays, retained commands, bounded parsing -------------------------------------

def test_a_command_records_its_id_durably_before_it_acts() -> None:
    from safehouse.device.core.effects import RememberCommand

    _, reply, effects = run(fresh(), cmd("test", {"id": "t-1", "ts": ts()}))
    kinds = [type(e).__name__ for e in effects]
    assert reply.ok and kinds.index("RememberCommand") < kinds.index("Emit")
    [remember] = [e for e in effects if isinstance(e, RememberCommand)]
    assert remember == RememberCommand("t-1", WALL)  # kept by the sender's ts, not the kiosk's clock


def test_ids_loaded_at_start_refuse_a_replay_as_replayed() -> None:
    from dataclasses import replace

    state = replace(fresh(), executed_commands=ExecutedCommands(((WALL - 60, "from-before-the-restart"),)))
    _, reply, effects = run(state, cmd("test", {"id": "from-before-the-restart", "ts": ts()}))
    assert not reply.ok and (reply.error or "").startswith("replayed:")
    assert reply.id == "from-before-the-restart" and not any(isinstance(e, Emit) for e in effects)


def test_every_rejection_echoes_the_id_when_it_can_be_read() -> None:
    deep = b'{"id": "deep-1", "ts": "x", "a": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    cases = [
        (cmd("ping", deep), "too_deep", "deep-1"),
        (cmd("ping", b'{"id": "big-1", "pad": "' + b"x" * MAX_PAYLOAD + b'"}'), "too_large", "big-1"),
        (cmd("ping", b'{"id": "cut-1", "ts": '), "not_json", "cut-1"),
        (cmd("ping", b'{"id": "bin-1"}\xff'), "not_json", "bin-1"),
        (cmd("test", {"id": "ret-1", "ts": ts()}, retain=True), "retained", "ret-1"),
        (cmd("ping", {"id": "old-1", "ts": ts(-3600)}), "stale", "old-1"),
        (cmd("x" * 10_000, {"id": "name-1", "ts": ts()}), "unknown_command", "name-1"),
        (cmd("light", {"id": "arg-1", "ts": ts(), "pattern": "disco", "minutes": 1}), "bad_args", "arg-1"),
        (cmd("ping", {"id": 5, "ts": ts()}), "bad_id", None),
        (cmd("ping", {"id": "i" * 65, "ts": ts()}), "bad_id", None),
    ]
    for inp, reason, cid in cases:
        _, reply, effects = run(fresh(), inp)
        assert not reply.ok and (reply.error or "").startswith(reason + ":"), (reason, reply.error)
        assert reply.id == cid, (reason, reply.id)
        assert len(reply.error or "") < 400, reason  # a 10,000-character name is not quoted whole
        [reject] = [e for e in effects if type(e).__name__ == "Reject"]
        assert len(reject.reason) <= 500


def test_a_deeply_nested_alliance_alert_is_a_counted_rejection_not_an_exception() -> None:
    for payload in (b"[" * 50_000, b'{"device_id": "SH-2", "event_id": ' + b"{" * 3000, b"x" * 10_000):
        state, effects = decide(fresh(), AllianceAlert(payload), 10.0)
        assert state.light == "beacon"
        assert [type(e).__name__ for e in effects] == ["Reject"]


def test_a_retained_alliance_alert_is_stale_and_never_lights_the_sign() -> None:
    theirs = json.dumps({"device_id": "SH-2", "event_id": "e"}).encode()
    state, effects = decide(fresh(), AllianceAlert(theirs, retain=True), 10.0)
    assert state.light == "beacon" and state.neighbor_alerts == 0
    assert [type(e).__name__ for e in effects] == ["Reject"] and "retained" in effects[0].reason


# --- issue 18.16: once executed, never again, whatever the clocks do --------------------------

def test_the_kiosks_clock_plays_no_part_in_refusing_a_replay() -> None:
    """Executed at the sender's ts T; replayed with the kiosk's clock anywhere, synced or not."""
    state, reply, _ = run(fresh(), cmd("ping", {"id": "p-1", "ts": ts()}))
    assert reply.ok
    for wall in (WALL - 86_400, WALL + 3600, WALL + 10 * 365 * 86_400):
        for synced in (True, False):
            replay = PrecinctCommand("ping", json.dumps({"id": "p-1", "ts": ts()}).encode(), False, wall,
                                     synced)
            _, reply, _ = run(state, replay)
            assert not reply.ok and (reply.error or "")[:8] in ("replayed", "stale: c"), (wall, synced)


def test_a_command_at_or_before_the_watermark_is_refused_as_too_old() -> None:
    from dataclasses import replace

    state = replace(fresh(), executed_commands=ExecutedCommands(((WALL + 10, "kept"),), watermark=WALL))
    for offset, ok in ((-5.0, False), (0.0, False), (0.001, True)):
        _, reply, effects = run(state, cmd("test", {"id": f"new-{offset}", "ts": ts(offset)}))
        assert reply.ok is ok, (offset, reply.error)
        if not ok:
            assert (reply.error or "").startswith("too_old:")
            assert not any(isinstance(e, Emit) for e in effects)


def test_far_future_ids_raise_the_watermark_but_never_reopen_a_real_id() -> None:
    """Clock unsynced, 1,024 ids from year 9999: the real id is evicted, and still refused."""
    state, reply, _ = run(fresh(), cmd("test", {"id": "real", "ts": ts()}, synced=False))
    assert reply.ok
    resolve = {"id": "r", "ts": ts(1), "outcome": "cancelled"}
    state, _ = decide(state, cmd("resolve", resolve, synced=False), 6.0)
    for i in range(ExecutedCommands().cap):
        future = {"id": f"f-{i}", "ts": "9999-12-31T23:59:59Z"}
        state, _ = decide(state, cmd("ping", future, synced=False), 7.0)
    executed = state.executed_commands
    assert len(executed.entries) == executed.cap and all(cid.startswith("f-") for _, cid in executed.entries)
    _, reply, effects = run(state, cmd("test", {"id": "real", "ts": ts()}, synced=False))
    assert (reply.error or "").startswith("too_old:") and not any(isinstance(e, Emit) for e in effects)
    _, reply, _ = run(state, cmd("ping", {"id": "later", "ts": ts(2)}, synced=False))
    assert reply.ok  # newer than every evicted id: real commands still run
