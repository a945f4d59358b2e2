"""Process-wide memory policy of the daemon: large blocks go back to the kernel when freed.

An alarm allocates a few large blocks on short-lived threads (a 1280x720 frame is 3.7 MB,
an audio clip about 1 MB). glibc serves blocks over its mmap threshold (128 KiB) with mmap,
but raises that threshold to the size of each such block freed, so the next frames come from
a per-thread arena and stay resident after the alarm: ~6 MB of the daemon's peak, kept for
ever. A fixed threshold (which also stops the raising) returns them at once. Not glibc (musl),
or no ctypes: nothing is changed.
"""

from __future__ import annotations

import contextlib
import logging

_LOG = logging.getLogger(__name__)
M_MMAP_THRESHOLD = -3  # glibc's mallopt() parameter number
MMAP_THRESHOLD = 128 * 1024  # glibc's default, pinned


def give_back_large_blocks() -> bool:
    """Pin glibc's mmap threshold; True when it took effect."""
    with contextlib.suppress(OSError, AttributeError, ImportError):
        import ctypes

        if ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1:
            return True
    _LOG.debug("mallopt(M_MMAP_THRESHOLD) unavailable: large blocks may stay resident")
    return False
