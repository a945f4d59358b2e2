"""Whatever the umask, what the daemon makes is never group-writable nor open to others.

A daemon started by hand under umask 000 (a technician's shell, a broken image) used to leave
the folders it made above its state folder and its socket folder 0777, and the simulator's
files (the jumped clock, the fake microphone's signal and ALSA config) 0666: anyone on the Pi
could plant a file there the daemon reads back. Real daemon, real CLI, real files.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from safehouse.device.cli.acceptance import Report, write_report
from safehouse.services.command_ids import CommandIds
from safehouse.services.evidence import EvidenceStore
from safehouse.services.outbox import Outbox
from safehouse.services.seq_lease import SeqLease
from safehouse.services.stats import DailyStats
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config


@contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def too_open(top: Path) -> list[str]:
    """Everything under ``top`` that its group may write or anyone else may use at all."""
    found = []
    for path in [top, *top.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o027 and not (stat.S_ISSOCK(path.lstat().st_mode) and mode & 0o007 == 0):
            found.append(f"{oct(mode)} {path.relative_to(top.parent)}")
    return found


def test_under_umask_000_every_folder_and_file_the_daemon_makes_has_its_own_mode(short_dir: Path) -> None:
    state, run = short_dir / "var" / "lib" / "kiosk", short_dir / "run" / "kiosk"
    config = write_config(short_dir, capture=True)  # then moved two folders deeper, none made yet
    config.write_text(config.read_text().replace(str(short_dir / "state"), str(state))
                      .replace(str(short_dir / "ctl.sock"), str(run / "ctl.sock")))
    proc = DaemonProcess(config, run / "ctl.sock")
    with umask(0):
        proc.start(timeout=30)
    try:
        proc.ok("press")
        proc.ok("simulate", "clock", "jump", "--seconds", "60")  # the simulated clock's file
        assert (state / "sim-audio" / "mic.raw").exists() and (state / "sim-clock-offset").exists()
        assert too_open(short_dir / "var") == [] and too_open(short_dir / "run") == []
    finally:
        proc.kill()


def test_an_acceptance_report_folder_made_under_umask_000_is_not_world_writable(tmp_path: Path) -> None:
    with umask(0):
        written = write_report(Report(device={"id": "SH-TEST-0001"}, started=1_800_000_000.0),
                               tmp_path / "reports" / "kiosk")
    assert too_open(tmp_path / "reports") == [] and all(p.exists() for p in written)


def test_each_part_makes_the_folders_above_its_file_0750_under_umask_000(tmp_path: Path) -> None:
    """Each part that makes its own folder (a tool, a test, a daemon whose state_dir was removed
    meanwhile) makes every missing level above it 0750 too, not just the last one."""
    def made(name: str) -> Path:
        return tmp_path / name / "a" / "b"

    with umask(0):
        Outbox(made("outbox")).close()
        CommandIds(made("ids")).close()
        DailyStats(made("stats")).close()
        SeqLease([made("lease")]).write(1)
        EvidenceStore(made("evidence") / "evidence", quota_bytes=1 << 20,
                      hard_limit_bytes=2 << 20).put(str(uuid.uuid4()), "a.bin", b"x")
    assert too_open(tmp_path) == [], too_open(tmp_path)
