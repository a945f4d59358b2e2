"""`sudo safehouse outbox --salvage` works as the daemon's user, never as root.

Why: run as root, the salvage followed links planted in state_dir (it chmod-ed their targets,
wrote through them, pruned files wherever a ``quarantine`` link pointed) and left a root-owned
``outbox.db`` and ``quarantine/`` the daemon could then not open: every press went memory-only.
So as root it first finds the daemon's user: the owner of ``state_dir`` (a real directory, never
a link), as the daemon is the one that made it (systemd's StateDirectory=, the installer's
tmpfiles.d). Files in it still owned by root (left by an older release's root salvage) are
handed back to that user, without following a link; then the process drops to that user for
good. A root-owned ``state_dir`` while the installed ``safehouse`` user exists is refused (the
daemon could not use it either); on a machine without that user, the daemon runs as root and so
does the salvage (it still follows no link: services/quarantine.py, services/outbox_open.py).
"""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

from safehouse.device.cli.provisioning import GROUP
from safehouse.services.quarantine import FOLDER

_TOUCHED = ("outbox.db", "outbox-", "seq.lease", FOLDER)  # with sidecars and quarantined copies


def become_daemon_user(state_dir: Path) -> str | None:
    """Switch this (root) process to the daemon's user; why not, if it must not go on."""
    try:
        st = os.lstat(state_dir)
    except FileNotFoundError:
        return (f"{state_dir} does not exist: nothing to salvage (the daemon creates it at its start, "
                "as its own user)")
    except OSError as exc:
        return f"cannot examine {state_dir}: {exc.strerror or exc}"
    if stat.S_ISLNK(st.st_mode):
        return f"{state_dir} is a symbolic link: refused (as root, no link is followed)"
    if not stat.S_ISDIR(st.st_mode):
        return f"{state_dir} is not a directory"
    if st.st_uid == 0:
        try:
            pwd.getpwnam(GROUP)
        except KeyError:
            return None  # no daemon user here: the daemon runs as root, and so does the salvage
        return (f"{state_dir} belongs to root, but the daemon runs as '{GROUP}' and could not use it: "
                f"`sudo chown -R {GROUP}: {state_dir}`, then run this again")
    try:
        hand_back(state_dir, st.st_uid, st.st_gid)
        os.setgroups([st.st_gid])
        os.setgid(st.st_gid)
        os.setuid(st.st_uid)
    except OSError as exc:
        return f"cannot switch to the daemon's user (uid {st.st_uid}): {exc.strerror or exc}"
    return None


def hand_back(state_dir: Path, uid: int, gid: int) -> None:
    """Give root-owned outbox files (and quarantined copies) back to ``uid``; links untouched."""
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name in os.listdir(fd):
            if name.startswith(_TOUCHED):
                _give(fd, name, uid, gid)
        try:
            inner = os.open(FOLDER, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
        except OSError:
            return  # none, or a link: the salvage will not use it
        try:
            for name in os.listdir(inner):
                _give(inner, name, uid, gid)
        finally:
            os.close(inner)
    finally:
        os.close(fd)


def _give(dir_fd: int, name: str, uid: int, gid: int) -> None:
    st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    if st.st_uid == 0 and not stat.S_ISLNK(st.st_mode):
        os.chown(name, uid, gid, dir_fd=dir_fd, follow_symlinks=False)
