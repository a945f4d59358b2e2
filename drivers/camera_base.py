"""What every kiosk camera shares: the Frame it delivers, its error, one start/capture/close life.

The capture worker calls ``capture()`` off the core loop, so a slow or broken camera delays only
the evidence, never the alarm. The two cameras (``camera_pi``, ``camera_sim``) differ only in
how they open, take a frame and release.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from safehouse.device.core.closing import Closing
from safehouse.device.core.errors import HardwareError

_LOG = logging.getLogger(__name__)

CHECK = ("check the ribbon cable is seated at both ends (power off first), that "
         "`rpicam-hello --list-cameras` lists the camera, and that the daemon's user is in the "
         "`video` group")


class CameraError(HardwareError):
    """The camera could not start or deliver a frame; the message names it and what to check."""


@dataclass(frozen=True)
class Frame:
    """One JPEG; ``width``/``height`` are those of the JPEG itself, ``taken_at`` is monotonic."""

    jpeg: bytes
    width: int
    height: int
    taken_at: float


@runtime_checkable
class Camera(Protocol):
    def start(self) -> None: ...
    def capture(self) -> Frame: ...
    def close(self) -> None: ...


class BaseCamera(Closing):
    """Lifecycle shared by both cameras: start once, capture under one lock, close once.

    The lock serialises captures because the capture worker may ask for a frame while one is
    still being taken; close() waits for a running capture only ``close_wait`` seconds, so a
    hung camera cannot keep the daemon from shutting down.
    """

    close_wait = 12.0

    def __init__(self, width: int, height: int, quality: int, clock: Callable[[], float]) -> None:
        # picamera2 rejects odd sizes ("width and height should be even", check_stream_config).
        if width <= 0 or height <= 0 or width % 2 or height % 2:
            raise ValueError(f"camera width and height must be positive and even, got {width}x{height}")
        if not 1 <= quality <= 100:
            raise ValueError(f"camera JPEG quality must be 1..100, got {quality}")
        self._size, self._quality, self._clock = (width, height), quality, clock
        self._lock = threading.Lock()
        self._started = self._closed = False

    def start(self) -> None:
        """Open the camera; a no-op when already started, CameraError once closed."""
        with self._lock:
            if self._closed:
                raise CameraError(f"{self!r} is closed; build a new camera")
            if not self._started:
                self._open()
                self._started = True

    def close(self) -> None:
        """Release the camera; safe to repeat."""
        locked = self._lock.acquire(timeout=self.close_wait)
        if not locked:
            _LOG.warning("%r: a capture is still running; closing anyway", self)
        try:
            if not self._closed:
                self._closed = True
                self._release()
        finally:
            if locked:
                self._lock.release()

    def _ready(self) -> None:
        """Raise unless a capture makes sense now; caller holds the lock."""
        if self._closed or not self._started:
            state = "closed; build a new camera" if self._closed else "not started; call start() first"
            raise CameraError(f"{self!r} is {state}")

    def _open(self) -> None: ...

    def _release(self) -> None: ...

