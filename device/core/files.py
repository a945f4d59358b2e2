"""Files the kiosk keeps for itself and reads back: never through a link, never with the umask's modes.

What the daemon leaves in ``state_dir`` or the runtime folder and reads after a restart (the
unsent alarms, the keypad lockout, the simulated clock) is input like any other: whoever can
plant a symbolic link, a FIFO or a huge file there must not make the daemon read another file,
write through the link, hang in ``open()`` or fill its memory. And the modes must not come
from the umask: ``mkdir(parents=True)`` makes the parents ``0777`` minus the umask, so a
daemon started under umask 000 left world-writable folders above its state.

- ``not_plain()``: whether a file another library opens by name is a link or not a file;
- ``read_back()``: opened with ``O_NOFOLLOW | O_NONBLOCK``, a regular file only, at most a bound;
- ``write_atomic()``: a temp file beside it (``O_EXCL | O_NOFOLLOW``, the exact mode), fsync,
  rename over the old one (a link in its place is replaced, never followed), fsync the folder;
- ``make_folders()``: every missing folder of a path made with an explicit mode;
- ``set_aside()``: a file that failed its checks moved into ``quarantine/`` beside it (a link is
  moved, never followed; a link in place of ``quarantine/`` is not followed either), the newest
  ``keep`` kept: moved aside, not deleted, and never read back again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import time
from pathlib import Path

_LOG = logging.getLogger(__name__)
FOLDER_MODE = 0o750
QUARANTINE = "quarantine"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class FileRefused(OSError):
    """A file read back is not what the kiosk wrote there; ``reason`` is one word
    (``link``, ``not_a_file``, ``too_large``) and the message names the file."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def read_back(path: Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes; ``FileNotFoundError``
    if it is not there, ``FileRefused`` if it is a link, not a file or too large, else OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileRefused("link", f"{path} is a symbolic link: not followed") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused("not_a_file", f"{path} is not a regular file")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        raise FileRefused("too_large", f"{path} holds more than {limit} bytes")
    return b"".join(chunks)


def not_plain(*paths: Path) -> FileRefused | None:
    """The first of ``paths`` that is there but is a link or not a regular file (looked at with
    lstat: nothing followed), for a file another library opens by name (SQLite would follow a
    link and write through it); None when each is a plain file or absent."""
    for path in paths:
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            return FileRefused("link", f"{path.name} is a symbolic link: not followed")
        if not stat.S_ISREG(mode):
            return FileRefused("not_a_file", f"{path.name} is not a regular file")
    return None


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` durably: the old content or the new, never half, never
    written through a link planted at ``path`` or at the temp file's name."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have taken bits away, or left too many
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(path.parent)


def make_folders(path: Path, mode: int = FOLDER_MODE) -> None:
    """Make ``path`` and each missing folder above it with ``mode`` (minus what the umask takes
    away, never more); existing folders are left as they are."""
    missing: list[Path] = []
    folder = path
    while not folder.is_dir():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for each in reversed(missing):
        with contextlib.suppress(FileExistsError):  # made meanwhile by another part: fine
            each.mkdir(mode=mode)


def set_aside(folder: Path, name: str, tag: str, *, keep: int, family: str = "") -> Path | None:
    """Move ``folder/name`` into ``folder/quarantine/`` as ``{name}.{tag}-{UTC stamp}-{token}``
    (``name`` made printable); where it went, or None if it could not be moved. Only the newest
    ``keep`` of its ``family`` (names starting so; default: ``name``) stay there: the folder is
    shared (the outbox's damaged copies live there too). Without a usable ``quarantine/`` it is
    hidden beside it (``.{name}...``), where nothing reads it again."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    base = printable(name).lstrip(".")[:100]
    target = f"{base}.{tag}-{stamp}-{secrets.token_hex(3)}"
    try:
        folder_fd = os.open(folder, _DIR_FLAGS)
    except OSError as exc:
        _LOG.error("cannot open %s to set %r aside: %s", folder, name, exc)
        return None
    try:
        try:
            with contextlib.suppress(FileExistsError):
                os.mkdir(QUARANTINE, 0o700, dir_fd=folder_fd)
            aside_fd = os.open(QUARANTINE, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=folder_fd)
            try:
                os.rename(name, target, src_dir_fd=folder_fd, dst_dir_fd=aside_fd)
                _prune(aside_fd, family or base, keep)
            finally:
                os.close(aside_fd)
            return folder / QUARANTINE / target
        except OSError as exc:
            try:
                os.rename(name, f".{target}", src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
            except OSError:
                _LOG.error("cannot move %s aside: %s", printable(str(folder / name)), exc)
                return None
            return folder / f".{target}"
    finally:
        os.close(folder_fd)


def printable(text: str) -> str:
    """``text`` as valid, printable Unicode: a planted file's name may hold bytes that are not
    UTF-8 (lone surrogates once decoded) or control characters, and it ends up in an event."""
    return repr(text)[1:-1]


def _prune(folder_fd: int, family: str, keep: int) -> None:
    """Keep the newest ``keep`` files of ``family``: a flood of planted files cannot fill the folder."""
    aged = []
    for name in os.listdir(folder_fd):
        if not name.startswith(family):
            continue
        with contextlib.suppress(OSError):
            aged.append((os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mtime, name))
    for _mtime, name in sorted(aged)[:-keep] if keep > 0 else sorted(aged):
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=folder_fd)
            _LOG.warning("quarantine: removed the oldest file set aside, %s (keeping %d)", printable(name),
                         keep)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
