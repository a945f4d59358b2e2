"""The kiosk camera: one JPEG snapshot per alarm, from picamera2 on the Pi or a simulated test card.

The cameras live in ``camera_pi`` (picamera2, and what it takes to survive a hung camera) and
``camera_sim`` (test cards); their shared lifecycle in ``camera_base``. This module is the one
the daemon imports: it builds the camera the config asks for, without importing picamera2.
"""

from __future__ import annotations

from typing import Any

from safehouse.drivers.camera_base import Camera, CameraError, Frame
from safehouse.drivers.camera_pi import Picamera2Camera
from safehouse.drivers.camera_sim import SimCamera

__all__ = ["Camera", "CameraError", "Frame", "Picamera2Camera", "SimCamera", "make_camera"]

_PI_ONLY = ("camera_num", "timeout")


def make_camera(kind: str, **kwargs: Any) -> Camera:
    """Build the camera for the config's ``hardware``: "pi" (picamera2) or "sim" (test card).

    Only the simulated camera stamps ``device_id``; only the real one takes ``camera_num`` and
    ``timeout`` (``camera.timeout``, from which it derives its own shorter waits). Each drops
    what it does not take, so one call with the same keywords serves both.
    """
    if kind == "pi":
        kwargs.pop("device_id", None)
        return Picamera2Camera(**kwargs)
    if kind == "sim":
        for key in _PI_ONLY:
            kwargs.pop(key, None)
        return SimCamera(**kwargs)
    raise ValueError(f'camera kind must be "pi" or "sim", got {kind!r}')
