"""A small disk that really fills: a size-limited tmpfs, and a filler that takes every free byte.

Used by the storage tests and the chaos run. Mounting needs root; in CI (root) its absence
fails, elsewhere it skips. The filler refuses to run anywhere but on such a mount, so it can
never fill the machine's real disk.
"""

from __future__ import annotations

import errno
import os
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.rig.availability import unavailable


class TmpfsError(RuntimeError):
    """The tmpfs could not be mounted (not root, or no mount permission here)."""


def mount_tmpfs(path: Path, megabytes: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(path)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise TmpfsError(f"cannot mount a {megabytes} MB tmpfs on {path} (needs root): {res.stderr.strip()}")


def remount(path: Path, *, read_only: bool) -> None:
    """Make the tmpfs read-only (a card the kernel gave up on) or writable again."""
    if not os.path.ismount(path):
        raise ValueError(f"{path} is not a mount point: refusing to remount it")
    res = subprocess.run(["mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(path)],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise TmpfsError(f"cannot remount {path}: {res.stderr.strip()}")


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(path: Path) -> int:
    """Write ``path`` until the file system says ENOSPC, byte-exact, as a runaway log would."""
    if not os.path.ismount(path.parent):
        raise ValueError(f"{path.parent} is not a mount point: refusing to fill a real disk")
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 65536, 4096, 512, 1):
            chunk = b"\0" * size
            try:
                while True:
                    written += os.write(fd, chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return written


@contextmanager
def tmpfs(path: Path, megabytes: int) -> Iterator[Path]:
    """A mounted tmpfs for the length of a test; unavailable (fail in CI, skip elsewhere) if not root."""
    try:
        mount_tmpfs(path, megabytes)
    except TmpfsError as exc:
        unavailable(str(exc))
    try:
        yield path
    finally:
        unmount(path)


# What a failing SD card does to a SQLite file (seeded: the same garbage every run).

def garbage_page(db: Path, seed: int = 1) -> None:
    """4 KiB of garbage over the page in the middle of the file."""
    with db.open("r+b") as f:
        f.seek(db.stat().st_size // 2 // 4096 * 4096)
        f.write(random.Random(seed).randbytes(4096))


def truncate_half(db: Path, _seed: int = 0) -> None:
    os.truncate(db, db.stat().st_size // 2)


def garbage_header(db: Path, seed: int = 2) -> None:
    """The 100-byte database header overwritten: the file is no longer a database at all."""
    with db.open("r+b") as f:
        f.write(random.Random(seed).randbytes(100))
