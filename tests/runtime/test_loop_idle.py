"""The core loop wakes for inputs and due timers only: no idle tick unless the watchdog asks."""

from __future__ import annotations

import time
from collections.abc import Sequence

from safehouse.device.core.clock import SystemClock
from safehouse.device.core.effects import Effect
from safehouse.device.core.inputs import Tick
from safehouse.device.core.state import Policy, initial_state
from safehouse.device.runtime.loop import CoreLoop


def test_an_idle_loop_sleeps_until_an_input_and_ticks_only_when_asked() -> None:
    batches: list[Sequence[Effect]] = []

    def execute(effects: Sequence[Effect]) -> bool:
        batches.append(effects)
        return True

    loop = CoreLoop(initial_state(Policy()), execute, clock=SystemClock())
    loop.start()
    try:
        time.sleep(0.3)
        assert loop.processed == 0  # nothing due: not a single wake-up
        assert loop.submit(Tick(), 2.0) is not None
        assert loop.processed == 1
        loop.idle_wake = 0.02  # what the systemd watchdog sets, under its own interval
        loop.put(Tick())  # the sleep in progress had no timeout: an input starts the next one
        deadline = time.monotonic() + 5.0
        while loop.processed < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.processed >= 5 and loop.heartbeat_age() < 1.0
    finally:
        loop.stop()
