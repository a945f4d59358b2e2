"""The simulated wall clock: a chaos run steps it ±1 h without touching the machine's clock."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest

from safehouse.device.core.clock import SimClock
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config


def _age(ts: str) -> float:
    """Seconds from the event's wall time to now: about -3600 when the kiosk is an hour ahead."""
    return time.time() - datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def test_a_jump_moves_wall_time_only_and_survives_a_new_clock(tmp_path: Path) -> None:
    clock = SimClock(tmp_path / "offset")
    mono = clock.mono()
    assert clock.jump(3600) == 3600 and abs(clock.wall() - time.time() - 3600) < 1
    assert clock.mono() - mono < 1  # monotonic time never jumps
    assert SimClock(tmp_path / "offset").offset == 3600  # a restarted daemon keeps the step
    assert clock.jump(-7200) == -3600
    with pytest.raises(ValueError, match="at most"):
        clock.jump(400 * 86400)
    assert clock.jump(0) == 0 and SimClock(tmp_path / "offset").offset == 0


def test_the_kiosk_stamps_events_with_the_jumped_clock_across_a_kill_9(short_dir: Path) -> None:
    proc = DaemonProcess(write_config(short_dir), short_dir / "ctl.sock").start()
    try:
        assert "off by +3600 s" in proc.ok("simulate", "clock", "jump", "--seconds", "3600")
        proc.ok("press")
        assert -3610 < _age(proc.events()[-1]["ts"]) < -3590
        proc.kill()
        proc.start()
        proc.ok("resolve", "false_alarm")
        assert -3610 < _age(proc.events()[-1]["ts"]) < -3590
        assert "off by +0 s" in proc.ok("simulate", "clock", "none")
        res = proc.cli("simulate", "clock", "jump")
        assert res.returncode != 0 and "non-zero seconds" in res.stderr
    finally:
        proc.kill()


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), float("-inf")])
def test_a_jump_by_no_number_of_seconds_is_refused_and_not_kept(tmp_path: Path, seconds: float) -> None:
    """`safehouse simulate clock jump --seconds nan` once made every later timestamp NaN (the
    press that followed raised no alarm event), and the offset file kept it across restarts."""
    clock = SimClock(tmp_path / "offset")
    clock.jump(60)
    with pytest.raises(ValueError, match="at most"):
        clock.jump(seconds)
    assert clock.offset == 60 and SimClock(tmp_path / "offset").offset == 60
    (tmp_path / "offset").write_text(repr(seconds), encoding="ascii")  # written by an older daemon
    assert SimClock(tmp_path / "offset").offset == 0.0
