"""Evidence end to end: the sim kiosk's snapshots and clip reach an independent subscriber intact."""

from __future__ import annotations

import hashlib
import io
import json
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.rig.broker import Broker
from tests.rig.contract import validate
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config
from tests.rig.subscriber import Subscriber

ROOT = "safehouse/v1/test/SH-TEST-0001/"
FAST = ("[camera]\noffsets = [0.0, 0.5]\ntimeout = 1.0\nwidth = 640\nheight = 480\n"
        "[microphone]\npre_roll = 2.0\npost_roll = 1.0\n")


def kiosk(folder: Path, broker: Broker, extra: str = FAST) -> DaemonProcess:
    config = write_config(folder, f'[broker]\nurl = "{broker.url}"\n{extra}', capture=True)
    return DaemonProcess(config, folder / "ctl.sock").start()


def evidence_events(sub: Subscriber, count: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
    msgs = sub.wait_for(lambda m: m.topic == ROOT + "events" and b'"evidence"' in m.payload,
                        count=count, timeout=timeout)
    return [validate("event", m.payload) for m in msgs]


def test_snapshots_and_the_clip_reach_the_precinct_intact_with_pre_roll(short_dir: Path,
                                                                        broker: Broker) -> None:
    sub = broker.subscriber(["safehouse/#"])
    proc = kiosk(short_dir, broker)
    try:
        time.sleep(3.0)  # let the pre-roll buffer fill
        proc.ok("press")
        [event] = evidence_events(sub)
        alarm_id = event["data"]["alarm_id"]
        assert event["data"]["failures"] == {}
        files = {f["name"]: f for f in event["data"]["files"]}
        assert set(files) == {"snapshot-1.jpg", "snapshot-2.jpg", "audio.wav"}
        got = {m.topic.rsplit("/", 1)[1]: m.payload for m in
               sub.wait_for(ROOT + f"evidence/{alarm_id}/+", count=3, timeout=20)}
        for name, meta in files.items():
            assert hashlib.sha256(got[name]).hexdigest() == meta["sha256"] and len(got[name]) == meta["size"]
        image = Image.open(io.BytesIO(got["snapshot-1.jpg"]))
        assert image.size == (640, 480) and "SH-TEST-0001" in image.info["comment"].decode()
        with wave.open(io.BytesIO(got["audio.wav"])) as clip:
            assert (clip.getframerate(), clip.getnchannels(), clip.getsampwidth()) == (16000, 1, 2)
            samples = np.frombuffer(clip.readframes(clip.getnframes()), dtype="<i2")
        audio = files["audio.wav"]
        assert abs(audio["pre_roll_s"] - 2.0) < 0.15 and abs(audio["duration_s"] - 3.0) < 0.2
        source = np.fromfile(short_dir / "state" / "sim-audio" / "mic.raw", dtype="<i2")
        first = audio["first_frame"]  # the stream's frame index = the file offset (no rewind yet)
        assert np.array_equal(samples, source[first:first + len(samples)])
        panic = json.loads(sub.messages(ROOT + "events")[0].payload)
        assert panic["type"] == "panic" and panic["event_id"] == alarm_id
    finally:
        proc.kill()
        sub.close()


def test_broken_parts_never_hold_back_the_alarm_and_are_reported_once(short_dir: Path,
                                                                      broker: Broker) -> None:
    sub = broker.subscriber([ROOT + "events"])
    extra = FAST.replace("[microphone]\n", '[microphone]\ndevice = "no-such-microphone"\n')
    proc = kiosk(short_dir, broker, extra)
    try:
        proc.ok("simulate", "camera", "raise")
        for _ in range(2):
            proc.ok("press")
            proc.ok("resolve", "false_alarm")
        evidence = evidence_events(sub, count=2)
        for ev in evidence:
            assert "simulated camera failure" in ev["data"]["failures"]["camera"]
            assert "no-such-microphone" in ev["data"]["failures"]["microphone"]
        types = [json.loads(m.payload)["type"] for m in sub.messages(ROOT + "events")]
        assert types.count("camera_fault") == 1 and types.count("microphone_fault") == 1
        assert types[0] == "panic"  # the alarm went out before any capture result
        proc.ok("simulate", "camera", "hang")
        proc.ok("press")
        [*_, hung] = evidence_events(sub, count=3)
        assert "did not answer within 1 s" in hung["data"]["failures"]["camera"]
        assert proc.status()["alarm"]["state"] == "active"  # the daemon stays healthy
        proc.ok("resolve", "false_alarm")
        proc.ok("simulate", "camera", "none")
        proc.ok("press")
        sub.wait_for(lambda m: b'"camera_restored"' in m.payload, timeout=20)
    finally:
        proc.kill()
        sub.close()


def test_broker_down_during_capture_delivers_evidence_after_reconnect_alarm_first(
        short_dir: Path, broker: Broker) -> None:
    proc = kiosk(short_dir, broker)
    try:
        broker.stop()
        proc.ok("press")
        time.sleep(2.5)  # the capture finishes while the broker is down
        broker.start()
        sub = broker.subscriber(["safehouse/#"])
        [event] = evidence_events(sub, timeout=30)
        sub.wait_for(ROOT + f"evidence/{event['data']['alarm_id']}/+", count=3, timeout=30)
        topics = [m.topic for m in sub.messages()]
        panic_at = next(i for i, m in enumerate(sub.messages()) if b'"panic"' in m.payload)
        first_file = next(i for i, t in enumerate(topics) if "/evidence/" in t)
        assert panic_at < first_file  # the alarm before the files queued behind it
        sub.close()
    finally:
        proc.kill()
