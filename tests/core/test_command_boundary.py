"""Text from MQTT is checked where it enters the core (issue 18, items 2 and 18).

A command id holding a lone surrogate (``{"id":"\\ud800"}`` is valid JSON: a web page that
cuts an emoji id at 64 UTF-16 units sends exactly that) used to act, then fail when its id was
stored: the light showed help coming, but no result and no event ever left. A duplicate key
acted on the last value and echoed the first; an ISO week date passed as ``ts``. Each is now
refused with a reason word and an error result the broker can carry, and nothing acts.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safehouse.device.core import messages
from safehouse.device.core.alarm import decide
from safehouse.device.core.effects import Emit, RememberCommand, Reply, SetLight
from safehouse.device.core.inputs import AllianceAlert, ButtonChanged, PrecinctCommand
from safehouse.device.core.state import CoreState, Policy, initial_state

WALL = 1_800_000_000.0


def ts(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(WALL + offset, UTC).isoformat().replace("+00:00", "Z")


def raw(name: str, payload: str | bytes, *, synced: bool = True) -> PrecinctCommand:
    data = payload.encode() if isinstance(payload, str) else payload
    return PrecinctCommand(name, data, False, WALL, synced, None, None)


def active() -> tuple[CoreState, str]:
    state = initial_state(Policy(device_id="SH-1"), uuid.uuid4())
    state, _ = decide(state, ButtonChanged(True), 50.0)
    assert state.alarm is not None
    return state, state.alarm.event_id


def refused(state: CoreState, inp: PrecinctCommand) -> tuple[CoreState, Reply]:
    """The command is refused, nothing acts, and its result is a payload the broker can carry."""
    after, effects = decide(state, inp, 60.0)
    [reply] = [e for e in effects if isinstance(e, Reply)]
    assert not reply.ok, reply
    assert not any(isinstance(e, Emit | SetLight | RememberCommand) for e in effects), effects
    assert after.alarm == state.alarm and after.light == state.light
    body = json.loads(messages.result(reply, device_id="SH-1", wall=WALL).decode("utf-8"))
    assert body["error"] == reply.error and body["id"] == reply.id  # it encodes, and decodes the same
    return after, reply


@pytest.mark.parametrize(("name", "body"), [
    ("ack", '{"id": "\\ud800", "ts": "%(ts)s", "event_id": "%(alarm)s"}'),
    ("resolve", '{"id": "\\udc00x", "ts": "%(ts)s", "outcome": "cancelled"}'),
    ("ack", '{"id": "a\\ud83d", "ts": "%(ts)s", "event_id": "%(alarm)s"}'),  # an emoji cut in half
    ("ack", '{"id": "ok-1", "ts": "%(ts)s", "event_id": "%(alarm)s\\udcff"}'),
    ("resolve", '{"id": "ok-2", "ts": "%(ts)s", "outcome": "cancelled\\ud800"}'),
    ("resolve", '{"id": "ok-3", "ts": "%(ts)s", "outcome": "cancelled", "\\ud800": 1}'),
    ("ack", '{"id": "ok-4", "ts": "%(ts)s\\udfff", "event_id": "%(alarm)s"}'),
    ("ack", '{"id": "ok-5", "ts": "%(ts)s", "event_id": "%(alarm)s", "x": ["\\ud800"]}'),
])
def test_a_lone_surrogate_anywhere_in_a_command_is_refused_and_nothing_acts(name: str, body: str) -> None:
    state, alarm = active()
    _, reply = refused(state, raw(name, body % {"ts": ts(), "alarm": alarm}))
    assert (reply.error or "").startswith("not_unicode:"), reply.error
    assert "lone surrogate" in (reply.error or "")
    cid = json.loads(body % {"ts": ts(), "alarm": alarm})["id"]
    assert reply.id == (cid if cid.startswith("ok-") else None)  # a bad id is never echoed


def test_a_test_command_with_a_surrogate_id_raises_no_test_alarm() -> None:
    idle = initial_state(Policy(device_id="SH-1"), uuid.uuid4())
    for cid in ("\\ud800", "\\udc00x", "t\\udbff"):
        after, reply = refused(idle, raw("test", f'{{"id": "{cid}", "ts": "{ts()}"}}'))
        assert after.alarm is None and reply.id is None
        assert (reply.error or "").startswith("not_unicode:")


def test_a_control_character_in_an_id_is_refused_too() -> None:
    state, alarm = active()
    for cid in ("a\\u0000b", "line\\nbreak", "\\u001b[2J", "rtl\\u202e"):
        _, reply = refused(state, raw("ack", f'{{"id": "{cid}", "ts": "{ts()}", "event_id": "{alarm}"}}'))
        assert (reply.error or "").startswith("not_printable:") and reply.id is None


def test_a_refusal_for_another_reason_never_echoes_a_surrogate_id() -> None:
    """The id is read by a scan before the JSON is parsed (to answer a payload too deep or cut
    short): a surrogate there must not make the refusal itself unsendable."""
    state, _ = active()
    for payload in (b'{"id": "\\ud800", "a": ' + b"[" * 50 + b"]" * 50 + b"}", b'{"id": "\\ud800", "ts": ',
                    b'{"id": "\\ud800", "pad": "' + b"x" * 70_000 + b'"}'):
        _, reply = refused(state, raw("ack", payload))
        assert reply.id is None


def test_duplicate_keys_are_refused_instead_of_acting_on_the_last() -> None:
    state, alarm = active()
    cases = [
        (f'{{"id": "d-1", "ts": "{ts()}", "outcome": "police", "outcome": "cancelled"}}', "d-1"),
        (f'{{"id": "d-2", "id": "d-3", "ts": "{ts()}", "outcome": "cancelled"}}', None),
        (f'{{"id": "d-4", "ts": "{ts()}", "ts": "{ts(-9999)}", "outcome": "cancelled"}}', "d-4"),
    ]
    for body, cid in cases:
        _, reply = refused(state, raw("resolve", body))
        assert (reply.error or "").startswith("duplicate_key:"), reply.error
        assert reply.id == cid
    _, reply = refused(state, raw("ack", f'{{"id": "d-5", "ts": "{ts()}", "event_id": "{alarm}", '
                                         '"event_id": "x"}'))
    assert (reply.error or "").startswith("duplicate_key:") and "event_id" in (reply.error or "")


def test_a_duplicate_key_in_an_alliance_alert_is_a_counted_rejection() -> None:
    state = initial_state(Policy(device_id="SH-1"), uuid.uuid4())
    twice = b'{"device_id": "SH-2", "device_id": "SH-1", "event_id": "e"}'
    after, effects = decide(state, AllianceAlert(twice), 1.0)
    assert after.neighbor_alerts == 0 and [type(e).__name__ for e in effects] == ["Reject"]
    assert "duplicate_key" in effects[0].reason
    after, effects = decide(state, AllianceAlert(b'{"device_id": "SH-\\ud800", "event_id": "e"}'), 1.0)
    assert after.neighbor_alerts == 0 and "not_unicode" in effects[0].reason


@pytest.mark.parametrize("stamp", [
    "2027-W03-5T08:00:00Z",  # ISO week date (the "2026-W49-1T12:00:00Z" form)
    "2027-015T08:00:00Z",  # ISO ordinal date
    "20270115T080000Z",  # ISO basic format
    "2027-01-15T08:00Z",  # no seconds
    "2027-01-15T08Z",
    "2027-01-15T08:00:00",  # no offset
    "2027-01-15 08:00:00Z",  # a space is allowed by RFC 3339's note only for readability, not here
    "2027-01-15T08:00:00+0800",  # offset without colon
    "2027-01-15T08:00:00+08",
    "2027-01-15T08:00:00.Z",
    "2027-01-15T08:00:00,5Z",
    "2027-1-15T08:00:00Z",
    "2027-01-15T24:00:00Z",
    "2027-02-30T08:00:00Z",
    "2027-01-15T08:00:60Z",  # a leap second: no POSIX time for it
    "+2027-01-15T08:00:00Z",
    "2027-01-15T08:00:00+24:00",
    "２０２７-01-15T08:00:00Z",  # full-width digits: str.isdigit() says yes, RFC 3339 says no
])
def test_only_rfc_3339_date_times_are_accepted_as_ts(stamp: str) -> None:
    state, _ = active()
    _, reply = refused(state, raw("ping", json.dumps({"id": "t-1", "ts": stamp})))
    assert (reply.error or "").startswith("bad_ts:") and reply.id == "t-1", (stamp, reply.error)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=8), timedelta(hours=-5, minutes=-30)])
def test_rfc_3339_with_any_offset_fraction_or_lower_case_is_accepted(offset: timedelta) -> None:
    zone = timezone(offset)
    local = datetime.fromtimestamp(WALL, zone)
    for stamp in (local.isoformat(), local.isoformat(timespec="milliseconds"),
                  local.strftime("%Y-%m-%dt%H:%M:%S.123456789") + local.strftime("%z")[:3] + ":"
                  + local.strftime("%z")[3:]):
        if offset == timedelta(0):
            stamp = stamp.replace("+00:00", "z")
        state, _ = active()
        _after, effects = decide(state, raw("ping", json.dumps({"id": "ok", "ts": stamp})), 60.0)
        [reply] = [e for e in effects if isinstance(e, Reply)]
        assert reply.ok, (stamp, reply.error)


# Any text, lone surrogates and controls included: st.text() all but never draws a surrogate,
# even from an alphabet that holds them, so characters are joined by hand.
SPECIAL = ["\ud800", "\udbff", "\udc00", "\udcff", "\udfff", "\x00", "\x1b", "\n", "\x85", "\u2028", "\u202e"]
hostile = st.lists(st.sampled_from(SPECIAL) | st.characters(), max_size=12).map("".join)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "ts", "event_id", "outcome", "pattern", "minutes", "x"])
                       | hostile,
                       st.one_of(hostile, st.integers(), st.floats(), st.none(),
                                 st.lists(hostile, max_size=2)), max_size=6),
       st.sampled_from(["ack", "resolve", "test", "light", "ping"]))
def test_every_result_can_be_carried_by_the_broker(body: dict[str, Any], name: str) -> None:
    """Whatever text a command holds, its one result encodes as UTF-8 JSON."""
    state, _ = active()
    _after, effects = decide(state, raw(name, json.dumps(body)), 60.0)
    [reply] = [e for e in effects if isinstance(e, Reply)]
    messages.result(reply, device_id="SH-1", wall=WALL)
