"""The kiosk camera: one JPEG snapshot per alarm, from picamera2 on the Pi or a simulated test card.

The capture worker calls ``capture()`` off the core loop, so a slow or broken camera delays only
the evidence, never the alarm. picamera2 is imported inside ``Picamera2Camera.start()``: importing
it loads libcamera and probes the platform at class definition (``Picamera2.platform =
Platform.get_platform()`` in raspberrypi/picamera2 ``picamera2/picamera2.py``), which must not
happen when the daemon merely imports its drivers, and cannot happen at all off a Pi.
"""

from __future__ import annotations

import importlib
import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

from PIL import Image, ImageDraw, ImageFont

from safehouse.device.errors import HardwareError

_LOG = logging.getLogger(__name__)

# capture_file(wait=N) gives up after N seconds in recent picamera2 (Job.get_result(timeout) in
# picamera2/job.py); older releases only test ``wait`` for truth, and block as before.
_CAPTURE_TIMEOUT_SECONDS = 10.0
_CLOSE_WAIT_SECONDS = _CAPTURE_TIMEOUT_SECONDS + 2.0
_HANG_SECONDS = 3600.0
_CHECK = ("check the ribbon cable is seated at both ends (power off first), that "
          "`rpicam-hello --list-cameras` lists the camera, and that the daemon's user is in the "
          "`video` group")
_BARS = ((192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0),
         (0, 0, 192))


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


class _Camera:
    """Lifecycle shared by both cameras: start once, capture under one lock, close once.

    The lock serialises captures because the capture worker may ask for a frame while one is
    still being taken; close() waits for a running capture only so long, so a hung camera
    cannot keep the daemon from shutting down.
    """

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
        locked = self._lock.acquire(timeout=_CLOSE_WAIT_SECONDS)
        if not locked:
            _LOG.warning("%r: a capture is still running; closing anyway", self)
        try:
            if not self._closed:
                self._closed = True
                self._release()
        finally:
            if locked:
                self._lock.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _ready(self) -> None:
        """Raise unless a capture makes sense now; caller holds the lock."""
        if self._closed or not self._started:
            state = "closed; build a new camera" if self._closed else "not started; call start() first"
            raise CameraError(f"{self!r} is {state}")

    def _open(self) -> None: ...

    def _release(self) -> None: ...


class Picamera2Camera(_Camera):
    """A Raspberry Pi camera through picamera2, kept running in a still mode between captures.

    It is configured once, at start(), with ``create_still_configuration(main={"size": (w, h)})``
    and left running, so a capture neither pays for reconfiguring nor gets a dark frame while
    exposure settles. JPEG quality goes in ``options["quality"]``, which picamera2 hands to Pillow
    when ``capture_file(buffer, format="jpeg")`` encodes the frame (``Helpers.save`` in
    picamera2/request.py; a BytesIO has no file name, so the format must be explicit).
    """

    def __init__(self, *, width: int = 1280, height: int = 720, quality: int = 85,
                 camera_num: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(width, height, quality, clock)
        self._num = camera_num
        self._cam: Any = None

    def __repr__(self) -> str:
        return f"<Picamera2Camera {self._num} {self._size[0]}x{self._size[1]}>"

    def capture(self) -> Frame:
        """Capture one JPEG; concurrent callers take turns.

        A failed capture releases the camera, so the next start() opens it afresh: a transient
        libcamera fault then costs one snapshot, not every snapshot until the daemon restarts.
        """
        buffer = io.BytesIO()
        with self._lock:
            self._ready()
            try:
                self._cam.capture_file(buffer, format="jpeg", wait=_CAPTURE_TIMEOUT_SECONDS)
            except Exception as exc:
                self._release()
                self._started = False
                raise CameraError(f"camera {self._num}: capture failed ({type(exc).__name__}: "
                                  f"{exc}); {_CHECK}") from exc
            taken_at = self._clock()
        data = buffer.getvalue()
        try:
            width, height = Image.open(io.BytesIO(data)).size
        except Exception as exc:
            raise CameraError(f"camera {self._num}: delivered {len(data)} bytes that are not a "
                              f"JPEG ({exc}); {_CHECK}") from exc
        return Frame(data, width, height, taken_at)

    def _open(self) -> None:
        try:
            module = importlib.import_module("picamera2")
        except ImportError as exc:
            raise CameraError(
                f"camera {self._num}: picamera2 not installed ({exc}): on the Pi `sudo apt install "
                'python3-picamera2` and a venv with --system-site-packages; off the Pi set hardware = "sim"'
            ) from exc
        except Exception as exc:  # e.g. numpy 2 in the venv vs apt's simplejpeg (picamera2#1088)
            raise CameraError(
                f"camera {self._num}: picamera2 is installed but fails to import ({type(exc).__name__}: "
                f"{exc}); a 'numpy.dtype size changed' error means the venv's numpy must stay below 2, "
                "like the system's (pip install 'numpy<2')") from exc
        try:
            self._cam = module.Picamera2(camera_num=self._num)
            self._cam.configure(self._cam.create_still_configuration(main={"size": self._size}))
            self._cam.options["quality"] = self._quality
            self._cam.start()
        except Exception as exc:
            self._release()
            raise CameraError(f"camera {self._num}: cannot start ({type(exc).__name__}: {exc}); "
                              f"{_CHECK}") from exc
        _LOG.info("camera %d started: %dx%d, JPEG quality %d", self._num, *self._size, self._quality)

    def _release(self) -> None:
        cam, self._cam = self._cam, None
        for step in () if cam is None else (cam.stop, cam.close):
            try:
                step()
            except Exception:
                _LOG.exception("%r: %s() failed while releasing the camera", self, step.__name__)


class SimCamera(_Camera):
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
        self._card = Image.new("RGB", self._size)  # drawn once: a capture only adds the text
        draw = ImageDraw.Draw(self._card)
        for i, colour in enumerate(_BARS):
            draw.rectangle((i * width // 7, 0, (i + 1) * width // 7, height * 3 // 5), fill=colour)

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
            image = self._card.copy()
            ImageDraw.Draw(image).multiline_text((image.width // 20, image.height * 5 // 8), text,
                                                 fill=(255, 255, 255), font=self._font)
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=self._quality, comment=text.replace("\n", " | "))
        return Frame(buffer.getvalue(), image.width, image.height, taken_at)

    def _release(self) -> None:
        self._closing.set()


def make_camera(kind: str, **kwargs: Any) -> Camera:
    """Build the camera for the config's ``hardware``: "pi" (picamera2) or "sim" (test card).

    Only the simulated camera stamps ``device_id``; the real one drops it, so one call with the
    same keywords serves both.
    """
    if kind == "pi":
        kwargs.pop("device_id", None)
        return Picamera2Camera(**kwargs)
    if kind == "sim":
        return SimCamera(**kwargs)
    raise ValueError(f'camera kind must be "pi" or "sim", got {kind!r}')
