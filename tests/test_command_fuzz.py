"""2,000+ malformed precinct commands through a real broker: every one answered, the kiosk unharmed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import write_config
from tests.contract import validate
from tests.daemon_proc import DaemonProcess
from tests.mqtt_rig import Broker

ROOT = "safehouse/v1/test/SH-TEST-0001/"

junk_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
payloads = st.one_of(
    st.binary(max_size=300),
    junk_json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"id": st.text(max_size=80), "ts": st.text(max_size=25)},
                          optional={"event_id": st.text(max_size=8), "outcome": st.text(max_size=8),
                                    "minutes": st.integers(-5, 5000), "pattern": st.text(max_size=8)})
    .map(lambda d: json.dumps(d).encode()),
    st.integers(65_537, 70_000).map(lambda n: b"{" + b" " * n + b"}"),
)


@pytest.mark.timeout(600)
def test_fuzzed_commands_are_each_answered_and_the_kiosk_stays_up(short_dir: Path, broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    sub = broker.subscriber([ROOT + "cmd/+/result"], timeout=10)
    sent = 0
    try:
        @settings(max_examples=2000, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(name=st.from_regex(r"[a-z_]{0,10}", fullmatch=True) | st.sampled_from(["ack", "light"]),
               payload=payloads, retain=st.booleans())
        def one(name: str, payload: bytes, retain: bool) -> None:
            nonlocal sent
            sub.publish(ROOT + f"cmd/{name}", payload, retain=retain)
            sent += 1
            [last] = sub.wait_for(ROOT + "cmd/+/result")
            sub.clear()  # one command in flight at a time: its result is the only message
            result = validate("result", last.payload)
            assert last.topic == ROOT + f"cmd/{name}/result"
            assert result["ok"] is False or name in ("ping", "test", "light", "ack", "resolve",
                                                           "rollcall", "selftest")

        one()
        assert sent >= 2000
        status = proc.status()
        assert status["alarm"]["state"] == "idle" or status["alarm"]["test"] is True
        assert proc.proc is not None and proc.proc.poll() is None
    finally:
        proc.kill()
        sub.close()


def test_a_retained_command_replayed_at_connect_is_refused_not_executed(short_dir: Path,
                                                                          broker: Broker) -> None:
    from datetime import UTC, datetime

    sub = broker.subscriber([ROOT + "cmd/+/result", ROOT + "events"])
    body = json.dumps({"id": "stale-1", "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z")})
    sub.publish(ROOT + "cmd/test", body, retain=True)  # left on the broker before the kiosk connects
    proc = DaemonProcess(write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n'),
                         short_dir / "ctl.sock").start()
    try:
        [msg] = sub.wait_for(ROOT + "cmd/test/result")
        result = validate("result", msg.payload)
        assert result["ok"] is False and "retained" in result["error"]
        assert proc.status()["alarm"]["state"] == "idle" and sub.messages(ROOT + "events") == []
    finally:
        proc.kill()
        sub.close()
