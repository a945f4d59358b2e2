"""Evidence figures: does capture slow the alarm down, how soon is a snapshot on disk, and
what the pre-roll costs in memory.

The same in-process kiosk setup (MockPWMPin, debounce 0, a real mosquitto, an independent
subscriber) runs twice in one process: capture off (the baseline), then capture on (sim
camera and the sim microphone on ALSA's file plugin). Each press waits for its evidence to
finish before the next, so every alarm meets a capture starting at the same moment.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory

from bench.kiosk import start_kiosk
from bench.press_latency import BUTTON, percentile
from safehouse.device.core.inputs import ResolveRequested
from safehouse.device.runtime.daemon import Daemon
from safehouse.services.topics import Topics
from tests.rig.broker import Broker

CAPTURE_ON = ("[camera]\noffsets = [0.0, 0.2]\n"
              "[microphone]\npre_roll = 10.0\npost_roll = 1.0\n")
CAPTURE_OFF = "[camera]\nenabled = false\n[microphone]\nenabled = false\n"


def _presses(daemon: Daemon, factory: MockFactory, broker: Broker, n: int,
             capture: bool) -> tuple[list[float], list[float]]:
    sub = broker.subscriber([Topics("b", "BENCH").events])
    button = factory.pin(BUTTON)
    to_event, to_snapshot = [], []
    try:
        if capture:
            time.sleep(10.5)  # a full pre-roll, as a kiosk that has been up a while has
        for _ in range(n):
            sub.clear()
            wall0, t0 = time.time(), time.monotonic()
            button.drive_low()
            [msg] = sub.wait_for(lambda m: b'"panic"' in m.payload)
            to_event.append(msg.received - t0)
            alarm_id = msg.json()["event_id"]
            button.drive_high()
            if capture:
                sub.wait_for(lambda m: b'"evidence"' in m.payload, timeout=10)
                snap = daemon.evidence.path_of(alarm_id, "snapshot-1.jpg")
                to_snapshot.append(snap.stat().st_mtime - wall0)
            daemon.loop.wait_until(lambda s, _n: not s.button.pressed, 2.0)
            daemon.loop.submit(ResolveRequested("false_alarm", "bench"), 2.0)
    finally:
        sub.close()
    return to_event, to_snapshot


def run(presses: int = 60) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-bench-ev-", dir="/tmp"))
    (folder / "broker").mkdir()
    broker = Broker(folder / "broker", mosquitto=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    broker.start()
    try:
        daemon, factory = start_kiosk(folder / "off", broker.url, CAPTURE_OFF)
        try:
            off, _ = _presses(daemon, factory, broker, presses, capture=False)
        finally:
            daemon.close()
            factory.close()
        daemon, factory = start_kiosk(folder / "on", broker.url, CAPTURE_ON)
        try:
            on, snapshot = _presses(daemon, factory, broker, presses, capture=True)
            mic = daemon.capture.parts()["microphone"]
            buffer_bytes = mic.buffer_bytes if mic is not None else float("nan")
        finally:
            daemon.close()
            factory.close()
    finally:
        broker.stop()
        shutil.rmtree(folder, ignore_errors=True)
    rows: list[dict[str, Any]] = []
    for name, q in (("p50", 0.5), ("p99", 0.99)):
        value, base = percentile(on, q) * 1000, percentile(off, q) * 1000
        rows.append({"figure": f"press→alarm event {name}, capture on (vs off)", "unit": "ms",
                     "value": value, "baseline": base, "n": len(on), "target": None,
                     "note": "target: ratio to capture off ≤ 1.1"})
    rows.append({"figure": "press→first snapshot on disk p50 (sim camera)", "unit": "ms",
                 "value": percentile(snapshot, 0.5) * 1000, "target": None, "n": len(snapshot)})
    rows.append({"figure": "press→first snapshot on disk p99 (sim camera)", "unit": "ms",
                 "value": percentile(snapshot, 0.99) * 1000, "target": None, "n": len(snapshot)})
    rows.append({"figure": "memory held by the 10 s pre-roll buffer", "unit": "bytes",
                 "value": buffer_bytes, "baseline": 10 * 16000 * 2, "target": None,
                 "note": "baseline: 10 s of 16 kHz int16 mono audio"})
    return rows
