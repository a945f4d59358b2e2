"""The systemd unit: valid, hardened (exposure ≤ 2.0), and Type=notify with a watchdog."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import require_tool

REPO = Path(__file__).resolve().parents[1]
UNIT = REPO / "systemd" / "safehouse.service"


def installed_copy(tmp_path: Path) -> Path:
    """The unit as installed, but pointing at this checkout's safehouse (verify checks ExecStart)."""
    safehouse = REPO / ".venv" / "bin" / "safehouse"
    unit = tmp_path / "safehouse.service"
    unit.write_text(UNIT.read_text().replace("/opt/safehouse/bin/safehouse", str(safehouse)))
    return unit


def test_the_unit_verifies_clean(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    res = subprocess.run([analyze, "verify", str(installed_copy(tmp_path))], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr


def test_the_unit_is_hardened_to_an_exposure_of_at_most_2(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    res = subprocess.run([analyze, "security", "--offline=true", "--threshold=20",
                          str(installed_copy(tmp_path))], capture_output=True, text=True, timeout=60,
                         check=False)
    assert res.returncode == 0, res.stdout[-2000:]
    assert "Overall exposure level for safehouse.service" in res.stdout


def test_the_unit_waits_for_ready_and_watches_the_core_loop() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "MemoryDenyWriteExecute=yes",
                 "StateDirectory=safehouse", "RuntimeDirectory=safehouse"):
        assert line in text, line
