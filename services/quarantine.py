"""Damaged state files are moved aside, never deleted: a technician (or a lab) may need them.

A damaged ``outbox.db`` is renamed together with its ``-wal`` and ``-shm`` into
``state_dir/quarantine/`` with a UTC timestamp, so SQLite still sees the three as one database
there and the salvage can read whatever is left. Files are made 0600 (they may hold the kiosk's
events) and only the newest ``KEEP`` sets per file name are kept, so a card that keeps failing
cannot fill the partition with copies of its own damage.

Every step works on directory descriptors and never follows a link: a ``quarantine`` that is a
symlink is refused as unusable (its pruning would otherwise delete files wherever it points), a
planted link among the files is moved as the link it is, and no chmod goes through one. This
runs as the daemon's user, and as root under `sudo safehouse outbox --salvage` before that
command switches user (device/cli/outbox.py).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import time
from pathlib import Path

_LOG = logging.getLogger(__name__)

FOLDER = "quarantine"
KEEP = 3
SIDECARS = ("", "-wal", "-shm", "-journal")
SALVAGED = ".salvaged"  # an empty file beside a quarantined copy whose salvage is done
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def quarantine(path: Path, *, wall: float | None = None) -> Path | None:
    """Move ``path`` and its sidecars into the quarantine folder; the new main file's path.

    Returns None when there was nothing to move. If the folder itself cannot be used (a file
    or a link in its place, a read-only or foreign mount on it), the copy is renamed beside
    ``path`` instead (``outbox-quarantined-STAMP.db``): a broken folder must not keep the kiosk
    off its disk. Raises OSError when no rename works (a read-only or vanished ``state_dir``):
    the caller then runs from memory.
    """
    try:
        parent = os.open(path.parent, _DIR)
    except (FileNotFoundError, NotADirectoryError):
        return None  # no folder, so nothing in it to move
    try:
        present = _present(parent, path.name)
        if not present:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if wall is None else wall))
        stem = f"{path.stem}-{stamp}"
        try:
            folder = _open_folder(parent)
        except OSError as exc:
            target = _beside(parent, path, stamp, exc)
            _LOG.critical("quarantined the damaged %s as %s (kept for forensics)", path.name, target)
            _prune(parent, path.parent, path)
            return target
        try:
            name = _move(parent, path.name, folder, stem, path.suffix, present)
            os.fsync(folder)
            os.fsync(parent)
            _prune(folder, path.parent / FOLDER, path)
        except OSError as exc:
            if not _present(parent, path.name):
                raise
            target = _beside(parent, path, stamp, exc)
        else:
            target = path.parent / FOLDER / name
        finally:
            os.close(folder)
    finally:
        os.close(parent)
    _LOG.critical("quarantined the damaged %s as %s (kept for forensics)", path.name, target)
    return target


def _present(dir_fd: int, name: str) -> list[str]:
    return [s for s in SIDECARS if _lexists(dir_fd, name + s)]


def _lexists(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _open_folder(parent: int) -> int:
    """The quarantine folder (made 0700 if missing), never through a link."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(FOLDER, 0o700, dir_fd=parent)
    try:
        return os.open(FOLDER, _DIR | os.O_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OSError(exc.errno, f"{FOLDER} is a link or not a folder (never followed)") from exc
        raise


def _beside(parent: int, path: Path, stamp: str, why: OSError) -> Path:
    present = _present(parent, path.name)
    if not present:
        raise why
    try:
        name = _move(parent, path.name, parent, f"{path.stem}-quarantined-{stamp}", path.suffix, present)
        os.fsync(parent)
    except OSError:
        raise why from None
    _LOG.error("quarantine folder %s is unusable (%s): the damaged copy is kept beside it",
               path.parent / FOLDER, why)
    return path.parent / name


def _move(src_dir: int, name: str, dst_dir: int, stem: str, suffix: str, present: list[str]) -> str:
    base, n = stem, 0
    while _lexists(dst_dir, f"{stem}{suffix}") or _lexists(dst_dir, f"{stem}{suffix}-wal"):
        n += 1
        stem = f"{base}-{n}"
    target = f"{stem}{suffix}"
    # The WAL first: a crash half-way must never leave a WAL beside a fresh database.
    for sidecar in sorted(present, key=lambda s: s == ""):
        os.replace(name + sidecar, target + sidecar, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        _private(dst_dir, target + sidecar)
    return target


def _private(dir_fd: int, name: str) -> None:
    """0600, unless it is a link (moved as it is, never chmod-ed through)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as exc:
        _LOG.warning("quarantine: %s left as it is (%s)", name, exc.strerror or exc)
        return
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        _LOG.warning("quarantine: could not make %s 0600", name)
    finally:
        os.close(fd)


def _prune(dir_fd: int, folder: Path, path: Path, keep: int = KEEP) -> None:
    """Delete all but the newest ``keep`` quarantined copies of ``path`` (with their sidecars),
    never one whose salvage is not done: it may hold the only copy of an alarm. Moving a file
    aside takes no space, so the copies a full disk keeps from being salvaged cost nothing new."""
    prefix, suffix = f"{path.stem}-", path.suffix
    mains = sorted(n for n in os.listdir(dir_fd) if n.startswith(prefix) and n.endswith(suffix)
                   and n != path.name)
    for old in mains[:-keep] if keep > 0 else mains:
        if not _lexists(dir_fd, old + SALVAGED):
            _LOG.warning("quarantine: the old copy %s is kept: its salvage is not done", folder / old)
            continue
        for sidecar in (*SIDECARS, SALVAGED):
            try:
                os.unlink(old + sidecar, dir_fd=dir_fd)  # a link is removed, never what it names
            except FileNotFoundError:
                continue
        _LOG.warning("quarantine: removed the old copy %s (keeping the newest %d)", folder / old, keep)


def quarantined(folder: Path) -> list[Path]:
    """Quarantined main files, oldest first (also those kept beside it when it was unusable)."""
    beside = list(folder.parent.glob("*-quarantined-*.db"))
    try:
        real = stat.S_ISDIR(os.lstat(folder).st_mode)
    except OSError:
        real = False
    if not real:
        return sorted(beside)
    return sorted([p for p in folder.iterdir() if p.suffix == ".db"] + beside)


def mark_salvaged(copy: Path) -> bool:
    """Leave ``SALVAGED`` beside a quarantined copy once its rows are in the live outbox, so no
    later start salvages it again; False (logged) if it cannot be made."""
    try:
        folder = os.open(copy.parent, _DIR | os.O_NOFOLLOW)
    except OSError as exc:
        _LOG.warning("quarantine: %s not marked salvaged: %s", copy, exc.strerror or exc)
        return False
    try:
        fd = os.open(copy.name + SALVAGED, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=folder)
        os.close(fd)
        os.fsync(folder)
    except OSError as exc:
        _LOG.warning("quarantine: %s not marked salvaged: %s", copy, exc.strerror or exc)
        return False
    finally:
        os.close(folder)
    return True


def unsalvaged(path: Path) -> list[Path]:
    """Quarantined copies of ``path`` (plain files, oldest first) not marked salvaged."""
    prefix = f"{path.stem}-"
    found = []
    for copy in quarantined(path.parent / FOLDER):
        if not copy.name.startswith(prefix) or copy.name == path.name:
            continue
        try:
            plain = stat.S_ISREG(os.lstat(copy).st_mode)
            done = os.path.lexists(copy.with_name(copy.name + SALVAGED))
        except OSError:
            continue
        if plain and not done:
            found.append(copy)
    return found
