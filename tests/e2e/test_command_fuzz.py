"""2,000+ malformed precinct commands through a real broker: every one answered, the kiosk unharmed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.rig.broker import Broker
from tests.rig.console import online_ts, send_command
from tests.rig.contract import validate
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

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
    sub = broker.subscriber([ROOT + "cmd/+/result", ROOT + "events"])
    body = json.dumps({"id": "stale-1", "ts": "2026-01-01T00:00:00Z"})  # refused before ts is read
    sub.publish(ROOT + "cmd/test", body, retain=True)  # left on the broker before the kiosk connects
    proc = DaemonProcess(write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n'),
                         short_dir / "ctl.sock").start()
    try:
        [msg] = sub.wait_for(ROOT + "cmd/test/result")
        result = validate("result", msg.payload)
        assert result["ok"] is False and result["error"].startswith("retained:")
        assert result["id"] == "stale-1"
        assert proc.status()["alarm"]["state"] == "idle" and sub.messages(ROOT + "events") == []
    finally:
        proc.kill()
        sub.publish(ROOT + "cmd/test", b"", retain=True)
        sub.close()


# --- issue 12: replay after a restart, retained while connected, nesting, long names ------------

def test_a_command_replayed_after_a_restart_is_refused_as_replayed(short_dir: Path, broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    sub = broker.subscriber([ROOT + "cmd/+/result", ROOT + "events", ROOT + "status"], timeout=10)
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        ts = online_ts(sub, ROOT)
        recorded = {"id": "replay-1", "ts": ts}
        assert send_command(sub, ROOT, "test", recorded)["ok"] is True
        resolved = send_command(sub, ROOT, "resolve", {"id": "resolve-1", "ts": ts, "outcome": "cancelled"})
        assert resolved["ok"] is True
        assert proc.stop() == 0
        sub.clear()
        proc.start()
        online_ts(sub, ROOT)
        result = send_command(sub, ROOT, "test", recorded)  # the same bytes, recorded off the wire
        assert result["ok"] is False and result["error"].startswith("replayed:"), result
        assert result["id"] == "replay-1"
        assert proc.status()["alarm"]["state"] == "idle"
        panics = [e for e in proc.events() if e["type"] == "panic"]
        assert len(panics) == 1 and panics[0]["test"] is True
    finally:
        proc.kill()
        sub.close()


def test_live_retained_nested_and_oversized_commands_are_refused_with_their_id(short_dir: Path,
                                                                                broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    sub = broker.subscriber([ROOT + "cmd/#", ROOT + "status"], timeout=10)
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        ts = online_ts(sub, ROOT)
        result = send_command(sub, ROOT, "test", {"id": "live-retained-1", "ts": ts}, retain=True)
        assert result["ok"] is False and result["error"].startswith("retained:")
        assert result["id"] == "live-retained-1"
        sub.publish(ROOT + "cmd/test", b"", retain=True)
        for depth in (3_000, 29_000):  # 6 KB and 58 KB: both used to get no answer at all
            deep = b'{"id": "deep-%d", "ts": "%s", "a": ' % (depth, ts.encode()) \
                + b"[" * depth + b"]" * depth + b"}"
            result = send_command(sub, ROOT, "ping", deep)
            assert result["ok"] is False and result["error"].startswith("too_deep:")
            assert result["id"] == f"deep-{depth}"
        assert proc.status()["alarm"]["state"] == "idle"
        log_before = proc.log.stat().st_size
        name = "n" * 10_000
        for i in range(50):
            result = send_command(sub, ROOT, name, {"id": f"long-{i}", "ts": ts})
            assert result["error"].startswith("unknown_command:") and result["id"] == f"long-{i}"
            assert len(result["error"]) < 400
        proc.status()
        grown = proc.log.read_bytes()[log_before:]
        assert max(len(line) for line in grown.splitlines()) < 1000
        assert len(grown) < 10_000, f"50 rejected commands logged {len(grown)} bytes"
        assert proc.stop() == 0
        log = proc.log.read_text()
        suppressed = re.search(r"(\d+) more command lines were suppressed", log)  # said at shutdown
        assert suppressed is not None and int(suppressed.group(1)) >= 45
        assert "Traceback" not in log
    finally:
        proc.kill()
        sub.close()
