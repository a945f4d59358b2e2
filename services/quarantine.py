"""Damaged state files are moved aside, never deleted: a technician (or a lab) may need them.

A damaged ``outbox.db`` is renamed together with its ``-wal`` and ``-shm`` into
``state_dir/quarantine/`` with a UTC timestamp, so SQLite still sees the three as one database
there and the salvage can read whatever is left. Files are made 0600 (they may hold the kiosk's
events) and only the newest ``KEEP`` sets per file name are kept, so a card that keeps failing
cannot fill the partition with copies of its own damage.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from safehouse.services.fsync import fsync_dir

_LOG = logging.getLogger(__name__)

FOLDER = "quarantine"
KEEP = 3
SIDECARS = ("", "-wal", "-shm", "-journal")


def quarantine(path: Path, *, wall: float | None = None) -> Path | None:
    """Move ``path`` and its sidecars into the quarantine folder; the new main file's path.

    Returns None when there was nothing to move. If the folder itself cannot be used (a file
    in its place, a read-only or foreign mount on it), the copy is renamed beside ``path``
    instead (``outbox-quarantined-STAMP.db``): a broken folder must not keep the kiosk off its
    disk. Raises OSError when no rename works (a read-only or vanished ``state_dir``): the
    caller then runs from memory.
    """
    present = [s for s in SIDECARS if path.with_name(path.name + s).exists()]
    if not present:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if wall is None else wall))
    folder = path.parent / FOLDER
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        target = _move(path, folder, f"{path.stem}-{stamp}", present)
    except OSError as exc:
        present = [s for s in SIDECARS if path.with_name(path.name + s).exists()]
        if not present:
            raise
        try:
            target = _move(path, path.parent, f"{path.stem}-quarantined-{stamp}", present)
        except OSError:
            raise exc from None
        _LOG.error("quarantine folder %s is unusable (%s): the damaged copy is kept beside it", folder, exc)
        folder = path.parent
    _LOG.critical("quarantined the damaged %s as %s (kept for forensics)", path.name, target)
    prune(folder, path)
    return target


def _move(path: Path, folder: Path, stem: str, present: list[str]) -> Path:
    base, n = stem, 0
    while (folder / f"{stem}{path.suffix}").exists() or (folder / f"{stem}{path.suffix}-wal").exists():
        n += 1
        stem = f"{base}-{n}"
    target = folder / f"{stem}{path.suffix}"
    # The WAL first: a crash half-way must never leave a WAL beside a fresh database.
    for suffix in sorted(present, key=lambda s: s == ""):
        src, dst = path.with_name(path.name + suffix), target.with_name(target.name + suffix)
        os.replace(src, dst)
        try:
            os.chmod(dst, 0o600)
        except OSError:
            _LOG.warning("quarantine: could not make %s 0600", dst)
    fsync_dir(folder)
    fsync_dir(path.parent)
    return target


def prune(folder: Path, path: Path, keep: int = KEEP) -> None:
    """Delete all but the newest ``keep`` quarantined copies of ``path`` (with their sidecars)."""
    mains = sorted(p for p in folder.glob(f"{path.stem}-*{path.suffix}") if p.name.endswith(path.suffix))
    for old in mains[:-keep] if keep > 0 else mains:
        for suffix in SIDECARS:
            old.with_name(old.name + suffix).unlink(missing_ok=True)
        _LOG.warning("quarantine: removed the old copy %s (keeping the newest %d)", old, keep)


def quarantined(folder: Path) -> list[Path]:
    """Quarantined main files, oldest first (also those kept beside it when it was unusable)."""
    beside = list(folder.parent.glob("*-quarantined-*.db"))
    if not folder.is_dir():
        return sorted(beside)
    return sorted([p for p in folder.iterdir() if p.suffix == ".db"] + beside)
