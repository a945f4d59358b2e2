"""The camera part: its [camera] settings, build(), and the factory for the Pi or the simulated camera.

One JPEG snapshot per alarm, from picamera2 on the Pi (``camera_pi``, and what it takes to
survive a hung camera) or a simulated test card (``camera_sim``); their shared lifecycle is in
``camera_base``. Both implementations need Pillow (and the Pi one picamera2), so they are
imported only when a camera is built: loading the config (every CLI command does) and a kiosk
with the camera off never load Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from safehouse.device.core.settings import Rule, even_in_range, in_range, setting
from safehouse.drivers.camera_base import Camera, CameraError, Frame

__all__ = ["Camera", "CameraError", "CameraSettings", "Frame", "build", "make_camera"]

_PI_ONLY = ("camera_num", "timeout")


def _offsets(v: tuple[float, ...]) -> str | None:
    ok = 1 <= len(v) <= 10 and all(0 <= x <= 60 for x in v) and list(v) == sorted(v)
    return None if ok else "must be 1-10 ascending numbers from 0 to 60"


@dataclass(frozen=True)
class CameraSettings:
    """[camera]: the alarm's snapshots: whether, when, how large and how long to wait."""

    enabled: bool = setting(True, "take snapshots when an alarm starts")
    offsets: tuple[float, ...] = setting((0.0, 1.0, 2.0), "seconds after the press of each snapshot",
                                         Rule(_offsets, {"minItems": 1, "maxItems": 10,
                                                         "items": {"minimum": 0, "maximum": 60}}))
    width: int = setting(1280, "snapshot width in pixels (even)", even_in_range(160, 4056))
    height: int = setting(720, "snapshot height in pixels (even)", even_in_range(120, 3040))
    quality: int = setting(85, "JPEG quality 1-95", in_range(1, 95))
    timeout: float = setting(5.0, "a snapshot not taken within this (s) counts as a camera failure",
                             in_range(0.5, 60.0))


def build(settings: CameraSettings, *, simulated: bool, device_id: str) -> Camera | None:
    """The camera the config asks for, not yet started; None when ``camera.enabled`` is false.

    Simulated, a test card stamped with ``device_id``; real, the Pi camera, whose own waits
    (frame, then release) fit inside ``camera.timeout``. ``make_camera`` drops what each kind
    does not take, so one call serves both.
    """
    if not settings.enabled:
        return None
    return make_camera("sim" if simulated else "pi", device_id=device_id, timeout=settings.timeout,
                       width=settings.width, height=settings.height, quality=settings.quality)


def make_camera(kind: str, **kwargs: Any) -> Camera:
    """Build the camera for the config's ``hardware``: "pi" (picamera2) or "sim" (test card).

    Only the simulated camera stamps ``device_id``; only the real one takes ``camera_num`` and
    ``timeout`` (``camera.timeout``, from which it derives its own shorter waits). Each drops
    what it does not take, so one call with the same keywords serves both. The implementation
    is imported here, not at the top, so that this module costs no Pillow.
    """
    if kind == "pi":
        from safehouse.drivers.camera_pi import Picamera2Camera

        kwargs.pop("device_id", None)
        return Picamera2Camera(**kwargs)
    if kind == "sim":
        from safehouse.drivers.camera_sim import SimCamera

        for key in _PI_ONLY:
            kwargs.pop(key, None)
        return SimCamera(**kwargs)
    raise ValueError(f'camera kind must be "pi" or "sim", got {kind!r}')
