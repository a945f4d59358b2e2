"""Loopback networking shared by every rig that starts a server or a process: the one address,
a free port, and the child-dies-with-its-parent hook.

Everything the rig starts listens on 127.0.0.1 only.
"""

from __future__ import annotations

import ctypes
import signal
import socket

HOST = "127.0.0.1"  # the only address the rig ever talks to
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_LIBC = ctypes.CDLL(None, use_errno=True)  # loaded here: no dlopen in a child forked from threads


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it before use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In the child before exec (``preexec_fn``): SIGKILL it when the thread that started it dies.

    A test run killed by a CI timeout runs no teardown; without this its brokers would be
    orphaned, holding ports. (Start such children from the main thread or a long-lived one.)
    """
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
