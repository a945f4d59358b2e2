"""The storage thread retries only while storage is faulted; healthy, it sleeps until nudged."""

from __future__ import annotations

import time

from safehouse.device.runtime.storage_watch import StorageWatch


class FakeStore:
    def __init__(self) -> None:
        self.fault: str | None = None
        self.rounds = 0
        self.heal_after: int | None = None

    def recover(self) -> bool:
        self.rounds += 1
        if self.heal_after is not None and self.rounds >= self.heal_after:
            self.fault = None
            return True
        return False

    def salvage(self) -> object:
        return None

    def salvage_due(self) -> bool:
        return False


def wait_rounds(store: FakeStore, n: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while store.rounds < n and time.monotonic() < deadline:
        time.sleep(0.01)
    return store.rounds >= n


def test_healthy_storage_is_never_polled_and_a_fault_is_retried_until_it_heals() -> None:
    store, woken = FakeStore(), []
    watch = StorageWatch(store, lambda: woken.append(1), every=0.02)
    watch.start()
    try:
        time.sleep(0.3)
        assert store.rounds == 0  # healthy: recover() is asked only of a faulted store
        store.fault, store.heal_after = "read_only: test", 3
        watch.nudge()  # what the outbox does when a write fails
        assert wait_rounds(store, 3)
        assert store.fault is None and woken == [1]  # healed: the core loop was woken once
        time.sleep(0.3)
        assert store.rounds == 3  # and the thread sleeps again
    finally:
        stopped = watch.stop()
    assert stopped


def test_a_fault_found_before_the_thread_starts_is_retried_without_a_nudge() -> None:
    store = FakeStore()
    store.fault = "full: test"
    watch = StorageWatch(store, lambda: None, every=0.02)
    watch.start()
    try:
        assert wait_rounds(store, 3)
    finally:
        stopped = watch.stop()
    assert stopped
