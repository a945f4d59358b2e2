"""The in-process bench kiosk: sim hardware on MockPWMPin, debounce 0, a real broker, online."""

from __future__ import annotations

import time
from pathlib import Path

from gpiozero.pins.mock import MockFactory, MockPWMPin

from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.daemon import Daemon

NO_CAPTURE = "[camera]\nenabled = false\n[microphone]\nenabled = false\n"


def start_kiosk(folder: Path, broker_url: str, extra: str = NO_CAPTURE) -> tuple[Daemon, MockFactory]:
    """Device BENCH of precinct b, started and (within 10 s) online; the caller closes both."""
    folder.mkdir(exist_ok=True)
    (folder / "c.toml").write_text(
        f'[device]\nid = "BENCH"\nprecinct = "b"\nhardware = "sim"\nstate_dir = "{folder}/state"\n'
        f'[control]\nsocket = "{folder}/ctl.sock"\n[button]\ndebounce_ms = 0\n'
        f'[broker]\nurl = "{broker_url}"\n{extra}')
    factory = MockFactory(pin_class=MockPWMPin)
    daemon = Daemon(configuration.load(folder / "c.toml"), pin_factory=factory)
    daemon.start()
    deadline = time.monotonic() + 10
    while daemon.link()["state"] != "online" and time.monotonic() < deadline:
        time.sleep(0.01)
    return daemon, factory
