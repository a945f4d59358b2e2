"""Press → first light change, through the real daemon objects on gpiozero's MockPWMPin.

The button pin is driven low; the latency is the time until either light channel's pin
changes level, read from MockPin's own state history (its timestamps are deltas since the
previous change, so they are summed from the moment the history was cleared). Each press is
resolved before the next, so every sample is a new alarm. Measured twice in the same run:
with ``debounce_ms = 0`` (the software path) and with the shipped 20 ms debounce (what a
citizen sees); the difference is the debounce itself. The baseline, measured first in the
same run, is gpiozero alone: a Button callback setting a PWMLED directly.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory, MockPWMPin

from safehouse.device.core.inputs import ResolveRequested
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon

RED, BLUE, BUTTON = 17, 27, 22


def _first_change(pin: Any, cleared_at: float) -> float | None:
    t = cleared_at
    for state in pin.states[1:]:
        t += state.timestamp
        return t
    return None


def measure(presses: int, debounce_ms: int) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="sh-bench-", dir="/tmp"))
    (folder / "c.toml").write_text(
        f'[device]\nid = "BENCH"\nprecinct = "b"\nhardware = "sim"\nstate_dir = "{folder}/state"\n'
        f'[control]\nsocket = "{folder}/ctl.sock"\n[button]\ndebounce_ms = {debounce_ms}\n'
        '[camera]\nenabled = false\n[microphone]\nenabled = false\n')
    factory = MockFactory(pin_class=MockPWMPin)
    daemon = Daemon(configuration.load(folder / "c.toml"), pin_factory=factory)
    daemon.start()
    try:
        return press_samples(daemon, factory, presses)
    finally:
        daemon.close()
        factory.close()
        shutil.rmtree(folder, ignore_errors=True)


def press_samples(daemon: Daemon, factory: MockFactory, presses: int, timeout: float = 2.0) -> list[float]:
    """Press → first light change on a running daemon, each press resolved before the next."""
    red, blue, button = factory.pin(RED), factory.pin(BLUE), factory.pin(BUTTON)
    samples: list[float] = []
    for _ in range(presses):
        red.clear_states()
        blue.clear_states()
        cleared = t0 = time.monotonic()
        button.drive_low()
        if daemon.loop.wait_until(lambda s, _n: s.alarm is not None, timeout) is None:
            raise RuntimeError(f"press not registered within {timeout:g} s")
        changes = [t for t in (_first_change(red, cleared), _first_change(blue, cleared)) if t]
        samples.append(min(changes) - t0)
        button.drive_high()
        daemon.loop.wait_until(lambda s, _n: not s.button.pressed, timeout)
        daemon.loop.submit(ResolveRequested("false_alarm", "bench"), timeout)
    return samples


def measure_bare(presses: int) -> list[float]:
    """Baseline: gpiozero alone, a Button callback that sets a PWMLED in the calling thread."""
    from gpiozero import PWMLED, Button

    factory = MockFactory(pin_class=MockPWMPin)
    led = PWMLED(RED, pin_factory=factory)
    button = Button(BUTTON, pin_factory=factory)
    button.when_pressed = lambda: setattr(led, "value", 1.0)
    button.when_released = lambda: setattr(led, "value", 0.0)
    pin, red = factory.pin(BUTTON), factory.pin(RED)
    samples = []
    try:
        for _ in range(presses):
            red.clear_states()
            cleared = t0 = time.monotonic()
            pin.drive_low()
            first = _first_change(red, cleared)
            assert first is not None
            samples.append(first - t0)
            pin.drive_high()
    finally:
        button.close()
        led.close()
        factory.close()
    return samples


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(presses: int = 1000) -> list[dict[str, Any]]:
    bare = measure_bare(presses)
    fast = measure(presses, debounce_ms=0)
    real = measure(max(100, presses // 5), debounce_ms=20)
    rows = []
    for label, samples, target in (("press→light, debounce 0 ms (software path)", fast, 5.0),
                                   ("press→light, debounce 20 ms (shipped default)", real, None)):
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            rows.append({"figure": f"{label} {name}", "value": percentile(samples, q) * 1000, "unit": "ms",
                         "n": len(samples), "baseline": percentile(bare, q) * 1000,
                         "target": target if name == "p99" else None})
    return rows
