"""The file work under the evidence store: names, atomic writes, scanning, deletion.

Kept apart from the policy in ``evidence.py`` (what to keep, what to evict) so each stays small.
Everything works relative to an open directory descriptor opened with ``O_NOFOLLOW``: a
symlink planted where an event folder or a file should be is never followed out of the store.

Crash safety comes from two hidden kinds of leftovers, both invisible to a scan:

- ``.{name}.{token}.tmp``: a file being written. It becomes visible only by ``rename``
  after ``fsync``, so a power cut leaves either the old file, the new one, or a temp file.
- ``.del-{event_id}-{token}``: an event folder being deleted. It is renamed out of sight
  first, so a cut in the middle of ``rmtree`` never leaves a half event that looks whole.

Names may not start with ``.``, so these can never collide with evidence.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LOG = logging.getLogger(__name__)

MANIFEST = "manifest.json"
TRASH_PREFIX = ".del-"
TMP_SUFFIX = ".tmp"
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_name(kind: str, value: str) -> str:
    """Refuse anything that could leave its folder or hide among the store's own files.

    The same characters are safe in an MQTT topic level (no ``/``, ``+`` or ``#``).
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value) or value.startswith("."):
        raise ValueError(f"evidence {kind} {value!r} is not allowed: use 1-64 characters from "
                         "A-Z a-z 0-9 . _ - that do not start with '.' (no paths)")
    return value


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


@dataclass(frozen=True)
class Folder:
    """What a scan saw of one event folder; ``temps`` are leftovers of interrupted writes."""

    event_id: str
    path: Path
    created: float
    total_bytes: int
    file_count: int
    has_manifest: bool
    temps: tuple[str, ...]


def open_dir(path: Path | str, *, dir_fd: int | None = None, follow: bool = False) -> int:
    """Open a directory for ``*at`` calls; a symlink is refused unless ``follow`` (the root,
    which an administrator may point at another disk)."""
    return os.open(path, _DIR_FLAGS & ~os.O_NOFOLLOW if follow else _DIR_FLAGS, dir_fd=dir_fd)


def open_locked(path: Path) -> int:
    """The directory opened and ``flock``-ed (closing the fd unlocks): keeps the CLI's purge
    and the daemon's writes apart."""
    fd = open_dir(path, follow=True)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_dir(parent_fd: int, name: str) -> bool:
    """Create ``name`` (mode 0700) in the parent; True if new (then the parent is fsync'd).

    An existing entry that is not a real directory (a symlink, a file) is an error: writing
    through it could put evidence outside the store.
    """
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
    except FileExistsError:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
        if not stat.S_ISDIR(mode):
            raise NotADirectoryError(f"{name} exists but is not a directory (a symlink or a file?); "
                                     "move it aside") from None
        return False
    fd = open_dir(name, dir_fd=parent_fd)
    try:
        os.fchmod(fd, 0o700)  # the umask may have taken bits away; make the mode exact
    finally:
        os.close(fd)
    os.fsync(parent_fd)
    return True


def write_atomic(dir_fd: int, name: str, data: bytes, mtime: float) -> None:
    """Temp file, write, fsync, rename over ``name``, fsync the folder; mode 0600.

    The mtime is set from the store's clock: it is how the store knows a file's age.
    """
    tmp = f".{name}.{secrets.token_hex(4)}{TMP_SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=dir_fd)
    try:
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.utime(fd, (mtime, mtime))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def scan_folder(path: Path, event_id: str) -> Folder | None:
    """Sizes and age of one event folder; None if it vanished meanwhile.

    Only regular files count (symlinks are neither followed nor counted); temp files are
    listed apart. The age is the oldest file's mtime (an empty folder: its own mtime).
    """
    created = float("inf")
    total = count = 0
    has_manifest = False
    temps: list[str] = []
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if is_temp(entry.name):
                    temps.append(entry.name)
                    continue
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode):
                    continue
                total += info.st_size
                created = min(created, info.st_mtime)
                if entry.name == MANIFEST:
                    has_manifest = True
                else:
                    count += 1
        if created == float("inf"):
            created = os.lstat(path).st_mtime
    except (FileNotFoundError, NotADirectoryError):
        return None
    return Folder(event_id, path, created, total, count, has_manifest, tuple(temps))


def scan(root: Path) -> tuple[list[Folder], list[str]]:
    """Event folders oldest first (ties by id), and the names of half-deleted folders."""
    folders: list[Folder] = []
    trash: list[str] = []
    try:
        entries = os.scandir(root)
    except FileNotFoundError:
        return [], []
    with entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.startswith(TRASH_PREFIX):
                trash.append(entry.name)
                continue
            try:
                check_name("event id", entry.name)
            except ValueError:
                _LOG.debug("evidence: ignoring %s, not an event folder", entry.path)
                continue
            folder = scan_folder(Path(entry.path), entry.name)
            if folder is not None:
                folders.append(folder)
    folders.sort(key=lambda f: (f.created, f.event_id))
    return folders, trash


def remove_folder(root_fd: int, event_id: str) -> bool:
    """Rename the folder out of sight, then delete it; False if it could not be renamed.

    Once renamed the folder no longer counts; what ``rmtree`` could not delete stays hidden
    and is retried by the next clean-up. ``rmtree`` here is the fd-based one: it unlinks
    symlinks, never follows them.
    """
    trash = f"{TRASH_PREFIX}{event_id}-{secrets.token_hex(4)}"
    try:
        os.rename(event_id, trash, src_dir_fd=root_fd, dst_dir_fd=root_fd)
    except FileNotFoundError:
        return True
    except OSError as exc:
        _LOG.error("evidence: cannot delete event folder %s: %s; check its permissions", event_id, exc)
        return False
    try:
        os.fsync(root_fd)
    except OSError as exc:
        _LOG.warning("evidence: fsync of the store after renaming %s failed: %s", event_id, exc)
    remove_tree(root_fd, trash)
    return True


def remove_tree(root_fd: int, name: str) -> bool:
    """Delete ``name`` under ``root_fd`` as far as possible; log what is left."""
    failures: list[str] = []

    def note(path: str, exc: BaseException) -> None:
        failures.append(f"{path}: {exc}")

    if sys.version_info >= (3, 12):
        shutil.rmtree(name, dir_fd=root_fd, onexc=lambda _f, p, exc: note(p, exc))
    else:
        def on_error(_func: Any, path: str, info: Any) -> None:
            note(path, info[1])

        shutil.rmtree(name, dir_fd=root_fd, onerror=on_error)
    if failures:
        _LOG.error("evidence: could not delete all of %s (%s); the next clean-up retries",
                   name, "; ".join(failures[:3]))
    return not failures


def remove_temps(folder: Folder) -> None:
    """Unlink the leftovers of interrupted writes; only safe while the store's lock is held."""
    try:
        dir_fd = open_dir(folder.path)
    except OSError as exc:
        _LOG.warning("evidence: cannot open %s to clean temp files: %s", folder.path, exc)
        return
    try:
        for name in folder.temps:
            try:
                os.unlink(name, dir_fd=dir_fd)
                _LOG.info("evidence: removed %s/%s left by an interrupted write", folder.path, name)
            except FileNotFoundError:
                pass
            except OSError as exc:
                _LOG.warning("evidence: cannot remove temp file %s/%s: %s", folder.path, name, exc)
    finally:
        os.close(dir_fd)
