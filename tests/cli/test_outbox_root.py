"""`sudo safehouse outbox --salvage`: as root it works as the daemon's user and follows no link.

Issue 18 #9, reproduced as a technician would meet it: the daemon's state_dir belongs to its own
user (here a uid with no name, as the daemon's is only a number to the kernel), someone planted
links in it, and the tool is run with sudo. Needs root (CI is); real files, the real CLI.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from tests.cli.test_outbox_tools import stored_events
from tests.rig.availability import unavailable
from tests.rig.daemon import cli
from tests.rig.disk import garbage_header
from tests.rig.kiosk_config import write_config

DAEMON_UID = DAEMON_GID = 54321


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        unavailable("the salvage's switch to the daemon's user needs root")


def give_to_daemon(state: Path) -> None:
    os.chown(state, DAEMON_UID, DAEMON_GID)
    for p in state.rglob("*"):
        os.chown(p, DAEMON_UID, DAEMON_GID, follow_symlinks=False)


def tree(folder: Path) -> Iterator[Path]:
    yield folder
    yield from folder.rglob("*")


def test_salvage_as_root_switches_to_the_daemons_user_and_follows_no_planted_link(
        short_dir: Path, as_root: None) -> None:
    short_dir.chmod(0o755)  # the daemon's user must reach its state_dir, as on the Pi
    config = write_config(short_dir)
    state = short_dir / "state"
    stored_events(state, 200)
    garbage_header(state / "outbox.db")
    elsewhere = short_dir / "elsewhere"  # root's files the links point at
    elsewhere.mkdir()
    bait = elsewhere / "outbox-20990101T000000Z.db"  # what the quarantine's pruning would delete
    for i in range(4):
        bait.with_name(f"outbox-2099010{i}T000000Z.db").write_bytes(b"keep me")
    secret = elsewhere / "secret"
    secret.write_bytes(b"root's own file")
    secret.chmod(0o644)
    (state / "quarantine").symlink_to(elsewhere)
    (state / "outbox.db.rebuilt").symlink_to(secret)
    (state / "outbox.db-shm").symlink_to(secret)
    give_to_daemon(state)
    res = cli(config, "outbox", "--salvage", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    assert secret.read_bytes() == b"root's own file" and stat.S_IMODE(secret.stat().st_mode) == 0o644
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(
        [f"outbox-2099010{i}T000000Z.db" for i in range(4)] + ["secret"])
    assert all(p.read_bytes() == b"keep me" for p in elsewhere.glob("outbox-*.db"))
    owners = {str(p.relative_to(short_dir)): (p.lstat().st_uid, p.lstat().st_gid) for p in tree(state)}
    assert set(owners.values()) == {(DAEMON_UID, DAEMON_GID)}, owners
    with Outbox(state) as box:
        assert len(box.events()) >= 190


def test_root_owned_files_left_by_an_earlier_root_salvage_are_handed_back(
        short_dir: Path, as_root: None) -> None:
    short_dir.chmod(0o755)
    config = write_config(short_dir)
    state = short_dir / "state"
    stored_events(state, 20)
    garbage_header(state / "outbox.db")
    os.chown(state, DAEMON_UID, DAEMON_GID)  # the folder is the daemon's; the files are root's
    res = cli(config, "outbox", "--salvage")
    assert res.returncode == 0, res.stdout + res.stderr
    assert {p.lstat().st_uid for p in tree(state)} == {DAEMON_UID}


def test_salvage_as_root_refuses_a_state_dir_that_is_a_link(short_dir: Path, as_root: None) -> None:
    config = write_config(short_dir)
    real = short_dir / "real"
    stored_events(real, 5)
    (short_dir / "state").symlink_to(real)
    res = cli(config, "outbox", "--salvage")
    assert res.returncode == 1 and "link" in res.stdout, res.stdout + res.stderr


def test_salvage_refuses_to_salvage_the_live_outbox_into_itself(short_dir: Path) -> None:
    config = write_config(short_dir)
    stored_events(short_dir / "state", 5)
    res = cli(config, "outbox", "--salvage", str(short_dir / "state" / "outbox.db"))
    assert res.returncode == 1 and "live outbox" in res.stdout, res.stdout + res.stderr
