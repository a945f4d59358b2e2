"""The camera as a part: its [camera] settings and the factory that builds the sim or the Pi camera.

The cameras (``camera_sim`` draws test cards with Pillow, ``camera_pi`` drives picamera2) are
imported only when the part is built, so loading the config (every CLI command does) and a
kiosk with the camera off never load Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from safehouse.device.core.settings import Rule, even_in_range, in_range, setting

if TYPE_CHECKING:
    from safehouse.drivers.camera_base import Camera


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
    from safehouse.drivers.camera import make_camera

    return make_camera("sim" if simulated else "pi", device_id=device_id, timeout=settings.timeout,
                       width=settings.width, height=settings.height, quality=settings.quality)
