"""Who gets a control-socket connection when it is full: a refusal budget and a slot kept for root.

At ``max_clients`` a new connection is refused with a one-line answer, but refusing costs CPU
the core loop and the uplink need, so refusals are rationed (a token bucket): past the budget,
extra connections wait in the kernel's listen backlog instead. One more connection is kept for
root and the daemon's own user, so `safehouse status` works during a flood; an idle connection
in that slot gives way to a newer one (the previous `safehouse status` may not be reaped yet).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections.abc import Callable, Collection

from safehouse.services.control_conn import Conn, error_line

__all__ = ["REFUSALS_PER_S", "REFUSAL_BURST", "RESERVED", "RefusalBudget", "free_kept_slot", "peer_uid"]

RESERVED = 1  # extra connections kept for root and the daemon's own user
REFUSALS_PER_S = 500.0  # past this, extra connections wait in the listen backlog instead
REFUSAL_BURST = 100.0
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


class RefusalBudget:
    """A token bucket: ``REFUSALS_PER_S`` refusals a second, ``REFUSAL_BURST`` at once."""

    def __init__(self) -> None:
        self._tokens, self._tokens_at = REFUSAL_BURST, time.monotonic()

    def take(self) -> bool:
        """One refusal may be sent now (a token was taken); False: leave it in the backlog."""
        now = time.monotonic()
        self._tokens = min(REFUSAL_BURST, self._tokens + (now - self._tokens_at) * REFUSALS_PER_S)
        self._tokens_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


def peer_uid(sock: socket.socket) -> int:
    """The connecting process's user id (SO_PEERCRED), or -1 if the kernel does not say."""
    try:
        return int(_CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))[1])
    except (OSError, struct.error):
        return -1


def free_kept_slot(conns: Collection[Conn], close: Callable[[Conn], None]) -> bool:
    """Is the kept slot free for a new root connection? An idle root connection in it gives
    way (the newest wins: the previous `safehouse status` may not be reaped yet)."""
    kept = [c for c in conns if c.reserved]
    if len(kept) < RESERVED:
        return True
    idle = [c for c in kept if not c.busy and not c.out]
    if not idle:
        return False
    with contextlib.suppress(OSError):
        idle[0].sock.send(error_line("busy: replaced by a newer connection from root"))
    close(idle[0])
    return True
