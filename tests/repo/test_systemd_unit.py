"""The systemd units: valid, hardened (exposure ≤ 2.0), Type=notify with a watchdog, and every
line the kiosk's hardware needs (a removed line fails here; tests/e2e/test_sandbox_rehearsal.py
runs the real GPIO stack in the unit's file view)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.rig.availability import require_tool
from tests.rig.sandbox import UnitView, parse_unit

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "safehouse.service"
SELFTEST = REPO / "systemd" / "safehouse-selftest.service"

# Each device the kiosk opens, and the DeviceAllow= lines that let it (see the unit's comments).
HARDWARE = {
    "GPIO /dev/gpiochip*": ["char-gpiochip rw"],
    "camera /dev/video*, /dev/v4l-subdev*": ["char-video4linux rw"],
    "camera /dev/media*": ["char-media rw"],
    "camera buffers /dev/dma_heap/*": ["char-dma_heap rw"],
    "microphone /dev/snd/*": ["char-alsa rw", "char-116 rw"],
    "USB-serial keypad /dev/ttyUSB*": ["char-ttyUSB rw", "char-188 rw"],
    "CDC-ACM keypad /dev/ttyACM*": ["char-ttyACM rw", "char-166 rw"],
    "header UART keypad, PL011 /dev/ttyAMA*": ["char-ttyAMA rw"],
    "header UART keypad, mini UART /dev/ttyS0": ["char-ttyS rw"],
}


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


@pytest.mark.parametrize("unit", [UNIT, SELFTEST], ids=lambda p: p.name)
def test_every_part_of_the_kiosk_has_its_device_line(unit: Path) -> None:
    allowed = parse_unit(unit.read_text())["DeviceAllow"]
    for part, lines in HARDWARE.items():
        for line in lines:
            assert line in allowed, f"{unit.name}: {part} needs DeviceAllow={line}"
    # systemd drops a directory ("is not a device"): only char-NAME/char-MAJOR or device nodes.
    for line in allowed:
        node = line.split()[0]
        assert node.startswith("char-") or (node.startswith("/dev/") and not node.endswith("dma_heap")), line
    assert parse_unit(unit.read_text())["DevicePolicy"] == ["closed"]


@pytest.mark.parametrize("unit", [UNIT, SELFTEST], ids=lambda p: p.name)
def test_lgpio_has_a_writable_working_directory_and_gpiozero_sees_the_board(unit: Path) -> None:
    view = UnitView.of(unit.read_text())
    assert view.working_directory in view.writable, (view.working_directory, view.writable)
    assert view.environment.get("LG_WD") == view.working_directory
    assert view.protect_system == "strict"
    # /proc/cpuinfo and /proc/device-tree stay visible; other processes stay hidden.
    assert "subset=pid" not in view.proc_options and "hidepid=invisible" in view.proc_options


def test_descriptor_and_task_limits_leave_room_for_16_clients_and_the_parts() -> None:
    unit = parse_unit(UNIT.read_text())
    # 16 control clients + paho + SQLite + camera dmabufs + mic + keypad: well under 200 fds.
    assert 1024 <= int(unit["LimitNOFILE"][-1]) <= 65536
    # about 50 threads (core, uplink, 16 control workers, libcamera's, PortAudio's, keypad).
    assert 128 <= int(unit["TasksMax"][-1]) <= 4096


def test_the_unit_waits_for_ready_and_watches_the_core_loop() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=always", "MemoryDenyWriteExecute=yes",
                 "StateDirectory=safehouse", "RuntimeDirectory=safehouse"):
        assert line in text, line


def test_the_runtime_directory_outlives_a_crash_a_restart_and_a_stop() -> None:
    """The unsent-alarm spool and the lease's second copy live in /run/safehouse: systemd must
    not remove it when the daemon dies and Restart= brings it back (nor at a stop); only a
    reboot clears it (tests/e2e/test_sandbox_rehearsal.py proves a kept alarm comes back)."""
    unit = parse_unit(UNIT.read_text())
    assert unit["RuntimeDirectory"] == ["safehouse"] and unit["RuntimeDirectoryPreserve"] == ["yes"]
    view = UnitView.of(UNIT.read_text())
    assert view.working_directory in view.runtime
