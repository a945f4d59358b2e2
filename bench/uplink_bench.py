"""Uplink figures against a real mosquitto, each beside its bare baseline in the same run.

- press → event at an independent subscriber (the daemon in-process on MockPWMPin, debounce
  0 ms so the figure is the software path), against a bare paho publish → receive round trip;
- durable appends per second to the outbox, against bare ``write + fsync`` of the same lines;
- drain of 10,000 events queued during an outage, against a bare paho QoS 1 publish loop of
  10,000 messages with the same in-flight window.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.kiosk import start_kiosk
from bench.press_latency import BUTTON, percentile
from safehouse.device.core.inputs import ResolveRequested
from safehouse.services.outbox import Outbox
from safehouse.services.topics import Topics
from safehouse.services.uplink import LinkSettings, Uplink
from tests.rig.broker import Broker

WINDOW = 100


def _fields(n: int) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "device_id": "BENCH", "precinct": "b", "type": "panic",
            "code": 120, "ts": "2026-11-28T00:00:00.000Z", "clock_synced": True, "mono": float(n),
            "boot_id": "bench", "test": True, "data": {"n": n}}


def bare_round_trip(broker: Broker, samples: int) -> list[float]:
    sub = broker.subscriber(["bench/rtt"])
    out = []
    try:
        for _ in range(samples):
            sub.clear()
            t0 = time.monotonic()
            sub.publish("bench/rtt", b"x" * 300, wait=False)
            [msg] = sub.wait_for("bench/rtt")
            out.append(msg.received - t0)
    finally:
        sub.close()
    return out


def press_to_event(broker: Broker, folder: Path, presses: int) -> list[float]:
    sub = broker.subscriber([Topics("b", "BENCH").events])
    daemon, factory = start_kiosk(folder, broker.url)
    button = factory.pin(BUTTON)
    out = []
    try:
        for _ in range(presses):
            sub.clear()
            t0 = time.monotonic()
            button.drive_low()
            [msg] = sub.wait_for(lambda m: b'"panic"' in m.payload)
            out.append(msg.received - t0)
            button.drive_high()
            daemon.loop.wait_until(lambda s, _n: not s.button.pressed, 2.0)
            daemon.loop.submit(ResolveRequested("false_alarm", "bench"), 2.0)
    finally:
        daemon.close()
        sub.close()
        factory.close()
    return out


def append_rates(folder: Path, n: int) -> tuple[float, float]:
    with Outbox(folder / "append") as outbox:
        t0 = time.perf_counter()
        for i in range(n):
            outbox.append_event(_fields(i), "bench/events")
        ours = n / (time.perf_counter() - t0)
    line = (str(_fields(0)) + "\n").encode()
    fd = os.open(folder / "bare.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            os.write(fd, line)
            os.fsync(fd)
        bare = n / (time.perf_counter() - t0)
    finally:
        os.close(fd)
    return ours, bare


def drain_ours(broker: Broker, folder: Path, n: int) -> float:
    outbox = Outbox(folder / "drain", events_cap=n * 2)
    for i in range(n):
        outbox.append_event(_fields(i), "bench/drain")
    uplink = Uplink(LinkSettings(url=broker.url, client_id="bench-drain", window=WINDOW),
                    Topics("b", "BENCH"), outbox, birth=lambda: b"{}", offline=lambda _r: b"{}",
                    on_command=lambda _m: None, on_alliance=lambda _m: None)
    t0 = time.perf_counter()
    uplink.start()
    try:
        while uplink.delivered < n:  # a counter: polling the outbox itself would slow the drain
            time.sleep(0.005)
        elapsed = time.perf_counter() - t0
        assert outbox.stats().depth["events"] == 0
        return elapsed
    finally:
        uplink.close()
        outbox.close()


def drain_bare(broker: Broker, n: int) -> float:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare")
    client.max_inflight_messages_set(WINDOW)
    acked = 0

    def on_publish(*_args: Any) -> None:
        nonlocal acked
        acked += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    payload = (str(_fields(0))).encode()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            client.publish("bench/bare", payload, qos=1)
        while acked < n:
            time.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        client.disconnect()
        client.loop_stop()


def run(presses: int = 300, drain: int = 10_000) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-bench-up-", dir="/tmp"))
    for sub in ("broker", "daemon"):
        (folder / sub).mkdir()
    broker = Broker(folder / "broker", mosquitto=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    broker.start()
    try:
        bare = bare_round_trip(broker, presses)
        ours = press_to_event(broker, folder / "daemon", presses)
        appended, fsynced = append_rates(folder, 2000)
        t_ours, t_bare = drain_ours(broker, folder, drain), drain_bare(broker, drain)
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    rows: list[dict[str, Any]] = []
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        rows.append({"figure": f"press→event at a subscriber {name} (debounce 0)", "unit": "ms",
                     "value": percentile(ours, q) * 1000, "baseline": percentile(bare, q) * 1000,
                     "target": 50.0 if name == "p99" else None, "n": len(ours),
                     "note": "baseline: bare paho publish→receive; target also ≤ 20x baseline"})
    rows.append({"figure": "durable outbox appends", "unit": "per s", "value": appended,
                 "baseline": fsynced, "target": None, "higher_is_better": True,
                 "note": "baseline: bare write+fsync of the same lines"})
    rows.append({"figure": f"drain of {drain} queued events", "unit": "per s", "value": drain / t_ours,
                 "baseline": drain / t_bare, "target": None, "higher_is_better": True,
                 "note": "baseline: bare paho QoS 1 loop, same window; target ≥ 50 % of it"})
    return rows

