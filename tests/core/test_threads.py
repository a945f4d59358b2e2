"""The worker-thread base: a worker that stops, one that is stuck, and stops repeated.

No test sleeps: a stuck worker is one blocked on an Event the test releases at the end, and
the only waits are the base's own bounded joins (short timeouts, never asserted on).
"""

from __future__ import annotations

import logging
import threading

import pytest

from safehouse.device.core.threads import Worker

_SHORT = 0.05  # a join that is expected to time out: short, and nothing asserts its length
_LONG = 5.0  # a join that is expected to succeed at once: generous, never reached


def test_a_worker_that_waits_on_stopping_stops_and_says_so() -> None:
    ran = threading.Event()

    def body() -> None:
        ran.set()
        worker.stopping.wait()

    worker = Worker(body, name="test-stops", join_seconds=_LONG)
    assert not worker.started and not worker.is_alive
    worker.start()
    assert ran.wait(_LONG)
    assert worker.is_alive
    assert worker.stop() is True
    assert not worker.is_alive and not worker.stuck
    assert worker.stopping.is_set()


def test_the_thread_is_a_named_daemon() -> None:
    seen: list[threading.Thread] = []
    worker = Worker(lambda: seen.append(threading.current_thread()), name="test-named")
    worker.start()
    assert worker.stop(_LONG)
    assert seen[0].name == "test-named" and seen[0].daemon


def test_the_wake_hook_ends_a_wait_on_the_owners_event() -> None:
    wake = threading.Event()
    rounds: list[int] = []

    def body() -> None:
        while not worker.stopping.is_set():
            wake.wait()
            wake.clear()
            rounds.append(1)

    worker = Worker(body, name="test-wake", wake=wake.set, join_seconds=_LONG)
    worker.start()
    assert worker.stop() is True
    assert rounds  # the hook woke it; without it the join would have timed out


def test_a_stuck_worker_is_reported_once_and_not_waited_for_again(
        caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    worker = Worker(release.wait, name="test-stuck", join_seconds=_SHORT)
    worker.start()
    try:
        with caplog.at_level(logging.WARNING, logger="safehouse.device.core.threads"):
            assert worker.stop() is False
            assert worker.stuck and worker.is_alive
            assert worker.stop() is False  # returns at once: no second join
            worker.close()
        warnings = [r for r in caplog.records if "did not stop" in r.getMessage()]
        assert len(warnings) == 1
        assert "test-stuck" in warnings[0].getMessage()
        assert "stuck" in repr(worker)
    finally:
        release.set()
    assert worker.stop(_LONG) is True  # it ended after all: no longer reported stuck
    assert not worker.stuck


def test_stop_is_idempotent_and_requests_the_stop_once() -> None:
    wakes: list[int] = []
    worker = Worker(lambda: None, name="test-idem", wake=lambda: wakes.append(1))
    assert worker.request_stop() is True
    assert worker.request_stop() is False
    assert worker.stop() is True  # never started: nothing to wait for
    worker.close()
    worker.close()
    assert wakes == [1]


def test_start_twice_is_one_thread_and_start_after_stop_is_refused() -> None:
    count: list[int] = []

    def body() -> None:
        count.append(1)
        worker.stopping.wait()

    worker = Worker(body, name="test-start", join_seconds=_LONG)
    worker.start()
    worker.start()
    assert worker.stop()
    assert count == [1]
    with pytest.raises(RuntimeError, match="was stopped"):
        worker.start()


def test_a_worker_may_stop_itself() -> None:
    results: list[bool] = []

    def body() -> None:
        results.append(worker.stop())

    worker = Worker(body, name="test-self", join_seconds=_LONG)
    worker.start()
    assert worker.stop() is True
    assert results == [True]


def test_a_subclass_overrides_run_and_wake_and_closes_with_with() -> None:
    class Ticker(Worker):
        def __init__(self) -> None:
            super().__init__(name="test-sub", join_seconds=_LONG)
            self.event = threading.Event()
            self.woken = False

        def run(self) -> None:
            self.event.wait()

        def wake(self) -> None:
            self.woken = True
            self.event.set()

    with Ticker() as ticker:
        ticker.start()
        assert ticker.is_alive
    assert ticker.woken and not ticker.is_alive and ticker.stopping.is_set()


def test_a_failing_wake_hook_is_logged_and_the_stop_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> None:
        raise OSError("pipe gone")

    worker = Worker(lambda: None, name="test-broken", wake=broken, join_seconds=_SHORT)
    with caplog.at_level(logging.ERROR, logger="safehouse.device.core.threads"):
        assert worker.request_stop() is True
    assert "waking the worker failed" in caplog.text
    assert worker.stopping.is_set()
