"""Random bytes in every file the daemon reads back at start: it starts, a press is durable and
delivered, and a garbled keypad lockout record never unlocks the keypad.

Hypothesis writes unsent-alarm files (``unsent-alarm-*.json`` beside the control socket) and the
keypad lockout record (``state_dir/keypad-lockout.json``): random bytes, garbled JSON, lone
surrogates, NUL, invalid UTF-8, huge and odd numbers, another kiosk's ids, cut-short records,
names that are not UTF-8, FIFOs and links. After each, the real daemon (in process, gpiozero's
MockFactory, a real mosquitto, real files) starts; `status` answers; a press is on disk and an
independent subscriber receives it on this kiosk's own events topic, and nothing else of this
kiosk's name leaves under another; the keypad is locked for at least the first level's time.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon
from safehouse.services.control import request
from safehouse.services.lockout_store import FILE, sealed
from safehouse.services.outbox import read_events
from tests.rig.broker import Broker
from tests.rig.clock import FakeClock
from tests.rig.kiosk_config import write_config

ROOT = "safehouse/v1/test/SH-TEST-0001/"
START = 5000.0
FIRST_LOCKOUT = 60.0
EVENT = {"schema": "safehouse/v1/event", "event_id": "", "seq": 1, "device_id": "SH-TEST-0001",
         "precinct": "test", "type": "panic", "code": 120, "ts": "2026-06-01T12:00:00.000Z",
         "clock_synced": True, "mono": 1.0, "boot_id": "boot-a", "test": False, "data": {"source": "button"}}
RECORD = {"version": 2, "failures": 1, "lockouts": 2, "locked_s": 120.0, "boot_id": "boot-a",
          "mono_until": START + 120.0, "wall_until": 1_800_000_120.0, "synced": True}  # a 120 s lockout
odd = st.one_of(st.text(max_size=8), st.sampled_from(["\ud800", "x\udcff", "\x00", "", "SH-OTHER", "NaN"]),
                st.integers(min_value=-(10**30), max_value=10**30), st.floats(allow_nan=False),
                st.none(), st.booleans(), st.lists(st.integers(), max_size=2))


def _dumps(value: Any) -> bytes:
    """JSON as an editor or a bug might leave it: lone surrogates escaped, non-finite numbers as is."""
    return json.dumps(value, ensure_ascii=True).encode()


@st.composite
def spool_file(draw: st.DrawFn) -> tuple[bytes, bytes | str]:
    """(the file's name, its content or "fifo" or "link")."""
    event_id = str(uuid.uuid4())
    event = {**EVENT, "event_id": event_id, "seq": draw(st.integers(1, 200))}
    if draw(st.booleans()):
        event[draw(st.sampled_from(sorted(EVENT)))] = draw(odd)
    payload = _dumps(event).decode()
    content = draw(st.one_of(
        st.binary(max_size=200),
        st.just(_dumps({"event_id": event_id, "payload": payload, "topic": ROOT.replace("0001", "0002")})),
        st.integers(0, 400).map(lambda n: _dumps({"event_id": event_id, "payload": payload})[:n]),
        st.just(_dumps({"event_id": event_id, "payload": "PANIC!!"})),
        st.just(b"[" * 3000), st.sampled_from(["fifo", "link"])))
    name = draw(st.sampled_from([f"unsent-alarm-{event_id}.json".encode(), b"unsent-alarm-\xff\n.json",
                                 f".unsent-alarm-{event_id}.json.0a0b0c0d.tmp".encode()]))
    return name, content


lockout_record = st.one_of(
    st.binary(max_size=120),
    st.integers(0, len(sealed(RECORD)) - 1).map(lambda n: sealed(RECORD)[:n]),  # cut short
    st.tuples(st.sampled_from(sorted(RECORD)), odd).filter(lambda kv: kv[1] != RECORD[kv[0]])
    .map(lambda kv: sealed(RECORD).replace(_dumps(RECORD[kv[0]]), _dumps(kv[1]), 1)
         if kv[0] != "boot_id" else sealed(RECORD).replace(b'"boot-a"', _dumps(kv[1]), 1)),  # garbled
    st.tuples(st.integers(0, len(sealed(RECORD)) - 1), st.integers(1, 255))
    .map(lambda nb: _flip(sealed(RECORD), *nb)),  # one byte changed
    st.sampled_from(["link", "fifo", "valid"]))


def _flip(data: bytes, at: int, mask: int) -> bytes:
    return data[:at] + bytes([data[at] ^ mask]) + data[at + 1:]


def plant(path: Path, content: bytes | str, elsewhere: Path) -> None:
    if content == "fifo":
        os.mkfifo(path)
    elif content == "link":
        os.symlink(elsewhere, path)
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)


@pytest.mark.timeout(300)
def test_random_bytes_in_the_files_read_back_never_silence_the_kiosk_nor_unlock_the_keypad(
        short_dir: Path, broker: Broker) -> None:
    sub = broker.subscriber(["safehouse/#"])
    runs = 0

    @settings(max_examples=60, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(spool=st.lists(spool_file(), max_size=3, unique_by=lambda f: f[0]), record=lockout_record)
    def one(spool: list[tuple[bytes, bytes | str]], record: bytes | str) -> None:
        nonlocal runs
        runs += 1
        folder = short_dir / str(runs)
        (folder / "state").mkdir(parents=True)
        unlocked = folder / "unlocked.json"  # what a link points at: a record that unlocks
        unlocked.write_bytes(_dumps({**RECORD, "lockouts": 0, "failures": 0, "locked_s": 0,
                                     "mono_until": None, "wall_until": None}))
        for name, content in spool:
            plant(Path(os.fsdecode(os.fsencode(folder) + b"/" + name)), content, unlocked)
        if record == "valid":
            (folder / "state" / FILE).write_bytes(sealed(RECORD))
        else:
            plant(folder / "state" / FILE, record, unlocked)
        config = configuration.load(write_config(folder, f'[broker]\nurl = "{broker.url}"\n'))
        clock = FakeClock(1_800_000_000.0, mono=START)
        factory = MockFactory(pin_class=MockPWMPin)
        daemon = Daemon(config, clock=clock, pin_factory=factory)
        daemon.start()
        try:
            assert request(config.control.socket, "status")["device_id"] == "SH-TEST-0001"
            answer = request(config.control.socket, "press")
            assert answer["record"] == "durable", answer
            event_id = answer["alarm"]["event_id"]
            assert event_id in {e.event_id for e in read_events(config.device.state_dir)}
            sub.wait_for(lambda m: m.topic == ROOT + "events" and m.json().get("event_id") == event_id,
                         timeout=15)
            keypad = daemon.loop.state.keypad
            assert keypad.locked_until is not None and keypad.locked_until - clock.mono() >= FIRST_LOCKOUT - 1
        finally:
            daemon.close()
            factory.close()
        assert all(m.topic.startswith(ROOT) for m in sub.messages())  # nothing under another name
        assert all(m.json()["device_id"] == "SH-TEST-0001" for m in sub.messages(ROOT + "events"))

    one()
    assert runs >= 60
    sub.close()
