"""Room kept for alarms: a ballast file in ``state_dir`` given back the moment the disk is full.

A full state partition (a runaway log, a stuck evidence folder, a technician's copy) must not
leave a panic press only in memory, where a power cut would lose it and the uplink cannot
send it. The daemon therefore holds ``size`` bytes of really allocated ballast; when an event
write fails, the shell releases it and writes again at once, and evidence refuses to eat into
the same amount (``floor_ok``). The ballast is put back once the partition has room again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import time
from pathlib import Path

_LOG = logging.getLogger(__name__)
NAME = ".alarm-reserve"
REARM_EVERY = 5.0  # seconds between free-space checks while released (a statvfs: cheap)


class SpaceReserve:
    def __init__(self, state_dir: Path, size: int) -> None:
        self.path = state_dir / NAME
        self.size = size
        self._next_check = 0.0

    @property
    def armed(self) -> bool:
        """The ballast is there: a plain file of its size (a link planted in its place is not)."""
        try:
            st = self.path.lstat()
        except OSError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size >= self.size

    def free_bytes(self) -> int:
        st = os.statvfs(self.path.parent)
        return st.f_bavail * st.f_frsize

    def arm(self) -> bool:
        """Allocate the ballast if missing and the partition has twice its size free; True if armed."""
        if self.size <= 0 or self.armed:
            return self.size > 0
        try:
            if self.free_bytes() < 2 * self.size:
                return False
            if self.path.is_symlink():  # never allocate through a planted link: it goes
                self.path.unlink()
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)  # real blocks, not a sparse promise
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            _LOG.warning("could not set aside %d bytes for alarms in %s: %s", self.size, self.path, exc)
            with contextlib.suppress(OSError):  # a read-only partition refuses even this
                self.path.unlink(missing_ok=True)
            return False
        return True

    def release(self) -> int:
        """Give the ballast back to the file system; the bytes freed (0 if there was none)."""
        try:
            size = self.path.stat().st_size
            self.path.unlink()
        except OSError:
            return 0
        self._next_check = time.monotonic() + REARM_EVERY
        _LOG.critical("state partition full: released the %d-byte alarm reserve %s", size, self.path)
        return size

    def rearm_due(self) -> bool:
        """True, at most every REARM_EVERY s, when released and now re-armed."""
        if self.size <= 0 or time.monotonic() < self._next_check or self.armed:
            return False
        self._next_check = time.monotonic() + REARM_EVERY
        return self.arm()

    def floor_ok(self, extra: int) -> bool:
        """Whether writing ``extra`` bytes (evidence) still leaves the reserve's worth free."""
        if self.size <= 0:
            return True
        try:
            return self.free_bytes() - extra >= (0 if self.armed else self.size)
        except OSError:
            return True
