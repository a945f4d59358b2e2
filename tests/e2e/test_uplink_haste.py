"""An alarm does not wait out the reconnect backoff: the uplink tries again at once.

Backoff grows to a minute so 2,100 kiosks don't hammer a broker that comes back; an alarm
queued meanwhile must not sit out that minute. Real daemon, real mosquitto.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

DELAY = re.compile(r"reconnecting in (\d+\.\d) s")


def test_a_press_while_backing_off_reaches_the_precinct_long_before_the_next_scheduled_retry(
        short_dir: Path, broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    sub = broker.subscriber(["safehouse/v1/test/SH-TEST-0001/events"])
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        broker.stop()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the kiosk schedules a retry >= 6 s away
            delays = DELAY.findall(proc.log.read_text())
            if delays and float(delays[-1]) >= 6.0:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the uplink never backed off for 6 s or more")
        sub.close()
        broker.start()
        sub = broker.subscriber(["safehouse/v1/test/SH-TEST-0001/events"])
        pressed = time.monotonic()
        proc.ok("press")
        sub.wait_for(lambda m: m.json().get("type") == "panic", timeout=5.5)
        assert time.monotonic() - pressed < 3.0, "the alarm waited for the scheduled retry"
        assert "an alarm is waiting: reconnecting now" in proc.log.read_text()
    finally:
        proc.stop()
        sub.close()


def test_an_alarm_left_undelivered_by_a_crash_keeps_the_retries_short(short_dir: Path,
                                                                       broker: Broker) -> None:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n')
    broker.stop()
    proc = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        proc.ok("press")
        proc.kill()  # the restarted kiosk writes no new alarm: only the outbox knows one waits
        proc.log.write_text("")
        proc.start()
        deadline = time.monotonic() + 60
        while len(DELAY.findall(proc.log.read_text())) < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
        delays = [float(d) for d in DELAY.findall(proc.log.read_text())]
        assert len(delays) >= 6, "the uplink did not keep retrying"
        assert max(delays) <= 2.0, f"an alarm waited out a long backoff: {delays}"
    finally:
        proc.kill()
