"""The simulated camera: real JPEG test cards, and a camera that breaks on request.

It stands in for the Pi camera in ``hardware = "sim"`` so end-to-end and chaos runs store, queue
and deliver real image files, and can break it (``safehouse simulate camera raise|hang``).
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from PIL import Image, ImageDraw, ImageFont

from safehouse.drivers.camera_base import BaseCamera, CameraError, Frame

_HANG_SECONDS = 3600.0
_BARS = ((192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0),
         (0, 0, 192))


class SimCamera(BaseCamera):
    """Real JPEGs of a test card: colour bars, the device id, the UTC wall time, a frame number.

    The same text goes into the JPEG comment (``Image.open(...).info["comment"]``), so a test or
    the precinct can read it back without OCR. ``fail`` simulates a broken camera for end-to-end
    and chaos runs: "raise" makes every capture raise CameraError; "hang" makes it block until
    close() (or an hour), then raise CameraError.
    """

    def __init__(self, *, device_id: str, width: int = 1280, height: int = 720, quality: int = 85,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 fail: str | None = None) -> None:
        if fail not in (None, "raise", "hang"):
            raise ValueError(f'SimCamera fail must be None, "raise" or "hang", got {fail!r}')
        super().__init__(width, height, quality, clock)
        self._device_id, self._wall, self._fail = device_id, wall, fail
        self._frames = 0
        self._closing = threading.Event()
        self._font = ImageFont.load_default(size=max(10, height // 14))

    def __repr__(self) -> str:
        return f"<SimCamera {self._device_id} {self._size[0]}x{self._size[1]}>"

    @property
    def fail(self) -> str | None:
        return self._fail

    @fail.setter
    def fail(self, mode: str | None) -> None:
        """Break (or mend) the simulated camera while the kiosk runs: `safehouse simulate`."""
        if mode not in (None, "raise", "hang"):
            raise ValueError(f'SimCamera fail must be None, "raise" or "hang", got {mode!r}')
        self._fail = mode

    def capture(self) -> Frame:
        """Render and encode one card; concurrent callers take turns."""
        if self._fail == "hang":
            with self._lock:
                self._ready()
            self._closing.wait(_HANG_SECONDS)
            raise CameraError(f"{self!r}: simulated hang ended without a frame (fail='hang')")
        with self._lock:
            self._ready()
            if self._fail == "raise":
                raise CameraError(f"{self!r}: simulated camera failure (fail='raise')")
            self._frames += 1
            taken_at, wall = self._clock(), datetime.fromtimestamp(self._wall(), UTC)
            text = (f"SIMULATED CAMERA\n{self._device_id}\n"
                    f"{wall.isoformat(timespec='milliseconds')}\nframe {self._frames}")
            image = self._test_card()
            ImageDraw.Draw(image).multiline_text((image.width // 20, image.height * 5 // 8), text,
                                                 fill=(255, 255, 255), font=self._font)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=self._quality, comment=text.replace("\n", " | "))
        return Frame(buffer.getvalue(), image.width, image.height, taken_at)

    def _test_card(self) -> Image.Image:
        """The colour bars, drawn afresh for each frame (a millisecond): a card kept between
        alarms would hold 3.7 MB (1280x720 RGB) of the daemon's memory for nothing."""
        width, height = self._size
        card = Image.new("RGB", self._size)
        draw = ImageDraw.Draw(card)
        for i, colour in enumerate(_BARS):
            draw.rectangle((i * width // 7, 0, (i + 1) * width // 7, height * 3 // 5), fill=colour)
        return card

    def _release(self) -> None:
        self._closing.set()
