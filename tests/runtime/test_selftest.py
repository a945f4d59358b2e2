"""The self-test orchestrator: the parts' checks in order, recorded; and cmd/selftest served off the loop."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from safehouse.device.core.clock import SystemClock
from safehouse.device.core.inputs import Input, PrecinctCommand, SelftestDone
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon
from safehouse.device.runtime.selftest import Selftest, SelftestRequests
from safehouse.services.outbox import read_events
from tests.rig.clock import T0
from tests.rig.kiosk_config import write_config
from tests.rig.wait import wait_for


def broken() -> tuple[bool, str]:
    raise OSError("no such device")


def test_each_check_runs_in_order_one_that_raises_fails_alone_and_the_result_is_recorded() -> None:
    recorded: list[tuple[Input, float]] = []
    selftest = Selftest([("light box", lambda: (True, "lit")), ("camera", broken),
                         ("disk", lambda: (False, "full"))],
                        record=lambda inp, timeout: recorded.append((inp, timeout)),
                        requests=SelftestRequests())
    checks = selftest.run("technician")
    assert checks == [{"name": "light box", "ok": True, "detail": "lit"},
                      {"name": "camera", "ok": False, "detail": "OSError: no such device"},
                      {"name": "disk", "ok": False, "detail": "full"}]
    assert recorded == [(SelftestDone(tuple(checks), "technician"), 5.0)]


def test_a_request_from_the_loop_runs_on_the_selftest_thread_and_close_ends_it() -> None:
    requests = SelftestRequests()
    ran: list[tuple[str, str]] = []
    threads: list[threading.Thread] = []

    def record(inp: Input, _timeout: float) -> None:
        assert isinstance(inp, SelftestDone)
        ran.append((inp.source, threading.current_thread().name))
        threads.append(threading.current_thread())

    selftest = Selftest([("clock", lambda: (True, "synchronised"))], record=record, requests=requests)
    selftest.start()
    requests.ask("precinct")  # what the effect runner does on RunSelftest: never blocks
    assert wait_for(lambda: ran == [("precinct", "selftest")])
    selftest.close()
    assert wait_for(lambda: not threads[0].is_alive())


class WallAtT0(SystemClock):
    """The real monotonic clock (the daemon's threads wait on it) and a wall clock stopped at T0:
    the precinct command's timestamp is fresh by the daemon's clock without the test reading time."""

    def wall(self) -> float:
        return T0


def test_cmd_selftest_from_the_precinct_records_a_selftest_event(short_dir: Path,
                                                                 factory: MockFactory) -> None:
    daemon = Daemon(configuration.load(write_config(short_dir)), clock=WallAtT0(), pin_factory=factory)
    daemon.start()
    try:
        now = T0
        body = {"id": "st-1", "ts": datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")}
        daemon.loop.put(PrecinctCommand("selftest", json.dumps(body).encode(), False, now, True))
        state_dir = daemon.config.device.state_dir
        assert wait_for(lambda: any(e.type == "selftest" for e in read_events(state_dir)), 10.0)
        event = next(e for e in read_events(state_dir) if e.type == "selftest")
        assert event.data["source"] == "precinct"
        assert [c["name"] for c in event.data["checks"]] == [
            "light box", "panic button", "microphone", "camera", "keypad", "broker", "disk", "clock",
            "outbox", "storage"]
    finally:
        daemon.close()
