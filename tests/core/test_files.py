"""Files read back and written by the kiosk (device/core/files.py): no link followed, no open that
hangs, no unbounded read, and modes that never come from the umask. Real files in a temp dir."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from safehouse.device.core.files import FileRefused, make_folders, read_back, set_aside, write_atomic


def test_read_back_returns_a_small_regular_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"abc")
    assert read_back(tmp_path / "f", 3) == b"abc"
    with pytest.raises(FileNotFoundError):
        read_back(tmp_path / "missing", 3)


def test_read_back_refuses_a_link_a_fifo_a_folder_and_too_many_bytes(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"not yours")
    (tmp_path / "link").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo")  # no writer: a plain open() would block for ever
    (tmp_path / "big").write_bytes(b"x" * 11)
    seen = {}
    for name in ("link", "fifo", "big"):
        with pytest.raises(FileRefused) as refused:
            read_back(tmp_path / name, 10)
        seen[name] = refused.value.reason
        assert str(tmp_path / name) in str(refused.value)
    assert seen == {"link": "link", "fifo": "not_a_file", "big": "too_large"}
    with pytest.raises(FileRefused, match="not a regular file"):
        read_back(tmp_path, 10)


def test_write_atomic_replaces_a_planted_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    target = tmp_path / "record"
    target.symlink_to(victim)
    write_atomic(target, b"new", 0o600)
    assert victim.read_bytes() == b"keep me" and not target.is_symlink()
    assert target.read_bytes() == b"new" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record", "victim"]  # no temp file left


def test_folders_get_their_mode_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        make_folders(tmp_path / "a" / "b" / "c", 0o750)
        write_atomic(tmp_path / "a" / "f", b"x", 0o640)
    finally:
        os.umask(old)
    for folder in ("a", "a/b", "a/b/c"):
        assert stat.S_IMODE((tmp_path / folder).stat().st_mode) == 0o750, folder
    assert stat.S_IMODE((tmp_path / "a" / "f").stat().st_mode) == 0o640
    make_folders(tmp_path / "a" / "b" / "c", 0o700)  # existing folders are left as they are
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o750


def test_set_aside_moves_a_link_not_its_target_and_prunes_only_its_own_family(tmp_path: Path) -> None:
    (tmp_path / "quarantine").mkdir()
    others = tmp_path / "quarantine" / "outbox-20260101T000000Z.db"  # the outbox's damaged copy
    others.write_bytes(b"keep me")
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    for n in range(4):
        (tmp_path / "record.json").symlink_to(victim)
        moved = set_aside(tmp_path, "record.json", f"link{n}", keep=2)
        assert moved is not None and moved.is_symlink() and moved.parent == tmp_path / "quarantine"
    kept = sorted(p.name for p in (tmp_path / "quarantine").iterdir())
    assert len(kept) == 3 and others.name in kept and victim.read_bytes() == b"untouched"
    assert sum(name.startswith("record.json.link") for name in kept) == 2
