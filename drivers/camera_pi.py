"""The Raspberry Pi camera through picamera2, built to survive a camera that stops sending frames.

picamera2 is imported inside ``start()``: importing it loads libcamera and probes the platform
at class definition (``Picamera2.platform = Platform.get_platform()`` in raspberrypi/picamera2
``picamera2/picamera2.py``), which must not happen when the daemon merely imports its drivers,
and cannot happen at all off a Pi.

Why a hang needs care (read in picamera2/picamera2.py and job.py): every capture is a Job queued
for the camera's event loop, which runs the jobs in order as frames arrive. When frames stop (a
loose ribbon cable, a flaky long cable: picamera2#962, #1065) the capture job stays at the head
of the queue, and ``stop()`` — itself a job queued behind it — then waits forever. picamera2
0.3.20 added ``cancel_all_and_flush()`` to clear the queue so the camera can be stopped; older
releases have no way out, and even libcamera's own stop can hang in the kernel (picamera2#1275).
So a capture waits for its frame a bounded time, then cancels the queue and releases the camera
on a helper thread joined with a timeout: the caller always gets its CameraError in less than
``camera.timeout``, and a camera whose release never returns is reported stuck, not waited on.
"""

from __future__ import annotations

import importlib
import io
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PIL import Image

from safehouse.drivers.camera_base import CHECK, BaseCamera, CameraError, Frame

_LOG = logging.getLogger(__name__)

FRAME_SHARE = 0.6  # of camera.timeout: the wait for a frame and its JPEG
RELEASE_SHARE = 0.3  # of camera.timeout: cancelling, stopping and closing after a failure
IDLE_FPS = 5.0  # the camera runs continuously between alarms; ~200 ms between frames is plenty
_UPGRADE = ("this picamera2 is older than 0.3.20 (no cancel_all_and_flush()), so stop() waits "
            "behind the stuck capture: `sudo apt update && sudo apt install python3-picamera2`")


class CaptureTimeout(TimeoutError):
    """No frame (and JPEG) came back within the driver's wait."""


class Picamera2Camera(BaseCamera):
    """A Raspberry Pi camera through picamera2, kept running in a still mode between captures.

    It is configured once, at start(), with ``create_still_configuration(main={"size": (w, h)})``
    and left running, so a capture neither pays for reconfiguring nor gets a dark frame while
    exposure settles. Left alone, a still configuration lets the frame duration span the sensor's
    whole range, which for a small output size means a fast binned mode at tens of frames per
    second, each one waking picamera2's event loop; ``FrameDurationLimits`` (min = max, in µs,
    when the camera advertises the control) holds the idle camera at ``IDLE_FPS`` instead. JPEG
    quality goes in ``options["quality"]``, which picamera2 hands to Pillow when
    ``capture_file(buffer, format="jpeg")`` encodes the frame (``Helpers.save`` in
    picamera2/request.py; a BytesIO has no file name, so the format must be explicit).

    ``timeout`` is ``camera.timeout``: a capture waits ``FRAME_SHARE`` of it for the frame, and
    a release after a failure ``RELEASE_SHARE`` of it, so the driver's own error comes before the
    capture worker gives up on the call.
    """

    def __init__(self, *, width: int = 1280, height: int = 720, quality: int = 85,
                 camera_num: int = 0, timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(width, height, quality, clock)
        if not timeout > 0:
            raise ValueError(f"camera timeout must be positive, got {timeout}")
        self._num = camera_num
        self._cam: Any = None
        self.frame_wait, self.release_wait = timeout * FRAME_SHARE, timeout * RELEASE_SHARE
        self.close_wait = timeout
        # At least two frames inside the wait, whatever camera.timeout is.
        self.frame_rate = max(IDLE_FPS, 2.0 / self.frame_wait)
        self._releasing: threading.Thread | None = None  # a release that did not return in time
        self._stuck_since = 0.0
        self._can_flush = True  # picamera2 >= 0.3.20; known once opened

    def __repr__(self) -> str:
        return f"<Picamera2Camera {self._num} {self._size[0]}x{self._size[1]}>"

    @property
    def stuck(self) -> bool:
        """True while a release (stop/close) that overran its wait has still not returned."""
        return self._releasing is not None and self._releasing.is_alive()

    def capture(self) -> Frame:
        """Capture one JPEG; concurrent callers take turns.

        A failed or timed-out capture cancels what is queued and releases the camera, so the
        next start() opens it afresh: a transient fault costs one snapshot, not every snapshot
        until the daemon restarts.
        """
        buffer = io.BytesIO()
        with self._lock:
            self._ready()
            try:
                self._take(buffer)
            except Exception as exc:
                self._started = False
                self._release()
                raise CameraError(f"camera {self._num}: capture failed ({type(exc).__name__}: "
                                  f"{exc}); {self._after_release()}; {CHECK}") from exc
            taken_at = self._clock()
        data = buffer.getvalue()
        try:
            width, height = Image.open(io.BytesIO(data)).size
        except Exception as exc:
            raise CameraError(f"camera {self._num}: delivered {len(data)} bytes that are not a "
                              f"JPEG ({exc}); {CHECK}") from exc
        return Frame(data, width, height, taken_at)

    def _take(self, buffer: io.BytesIO) -> None:
        """One capture job, waited for ``frame_wait`` seconds.

        A ``signal_function`` rather than ``wait=N``: picamera2 before 0.3.20 reads a number as
        "wait forever", while a signalled job behaves the same in every release.
        """
        done = threading.Event()
        job = self._cam.capture_file(buffer, format="jpeg", signal_function=lambda _job: done.set())
        if not done.wait(self.frame_wait):
            raise CaptureTimeout(f"no frame within {self.frame_wait:g} s")
        self._cam.wait(job)  # the job's result, or the error it ended with

    def _after_release(self) -> str:
        if not self.stuck:
            return "the camera was released and reopens at the next capture"
        old = "" if self._can_flush else f" ({_UPGRADE})"
        return (f"the camera did not stop within {self.release_wait:g} s and stays unusable until "
                f"that returns or the daemon restarts{old}")

    def _open(self) -> None:
        if self._releasing is not None:
            if self._releasing.is_alive():
                raise CameraError(
                    f"camera {self._num}: stuck, its stop() has not returned for "
                    f"{self._clock() - self._stuck_since:.0f} s; restart the daemon (or reboot if "
                    f"that hangs too); {CHECK}")
            _LOG.info("camera %d: the overdue release returned; opening it again", self._num)
            self._releasing = None
        module = _import_picamera2(self._num)
        try:
            self._cam = module.Picamera2(camera_num=self._num)
            self._can_flush = hasattr(self._cam, "cancel_all_and_flush")
            config = self._cam.create_still_configuration(main={"size": self._size},
                                                          controls=self._idle_controls())
            self._cam.configure(config)
            self._cam.options["quality"] = self._quality
            self._cam.start()
        except Exception as exc:
            self._release()
            raise CameraError(f"camera {self._num}: cannot start ({type(exc).__name__}: {exc}); "
                              f"{CHECK}") from exc
        if not self._can_flush:
            _LOG.warning("camera %d: %s; a hung capture will leave the camera stuck", self._num, _UPGRADE)
        _LOG.info("camera %d started: %dx%d, JPEG quality %d, %.1f fps", self._num, *self._size,
                  self._quality, self.frame_rate)

    def _idle_controls(self) -> dict[str, Any]:
        """A fixed frame duration at ``frame_rate``, inside the range the camera advertises."""
        limits = self._cam.camera_controls.get("FrameDurationLimits")
        if limits is None:  # e.g. a USB camera: configure() would refuse the control
            return {}
        period = round(1_000_000 / self.frame_rate)
        try:  # (min, max, default) in µs, scalars in every libcamera seen; never fail start on it
            period = min(max(period, int(limits[0])), int(limits[1]))
        except (TypeError, ValueError, IndexError):
            _LOG.warning("camera %d: unexpected FrameDurationLimits range %r", self._num, limits)
        return {"FrameDurationLimits": (period, period)}

    def _release(self) -> None:
        """Cancel queued jobs, stop and close on a helper thread; wait ``release_wait`` at most."""
        cam, self._cam = self._cam, None
        if cam is None:
            return
        thread = threading.Thread(target=self._release_steps, args=(cam,),
                                  name=f"camera-{self._num}-release", daemon=True)
        thread.start()
        thread.join(self.release_wait)
        if thread.is_alive():
            self._releasing, self._stuck_since = thread, self._clock()
            _LOG.error("camera %d: stop/close did not return within %g s; the camera is stuck",
                       self._num, self.release_wait)

    def _release_steps(self, cam: Any) -> None:
        flush = getattr(cam, "cancel_all_and_flush", None)
        for step in ((flush,) if flush else ()) + (cam.stop, cam.close):
            try:
                step()
            except Exception:
                _LOG.exception("%r: %s() failed while releasing the camera", self, step.__name__)
        if self._releasing is not None:
            _LOG.warning("camera %d: the release returned after all, %.1f s after it was given up on",
                         self._num, self._clock() - self._stuck_since)


def _import_picamera2(num: int) -> Any:
    try:
        return importlib.import_module("picamera2")
    except ImportError as exc:
        raise CameraError(
            f"camera {num}: picamera2 not installed ({exc}): on the Pi `sudo apt install "
            'python3-picamera2` and a venv with --system-site-packages; off the Pi set hardware = "sim"'
        ) from exc
    except Exception as exc:  # e.g. numpy 2 in the venv vs apt's simplejpeg (picamera2#1088)
        raise CameraError(
            f"camera {num}: picamera2 is installed but fails to import ({type(exc).__name__}: "
            f"{exc}); a 'numpy.dtype size changed' error means the venv's numpy must stay below 2, "
            "like the system's (pip install 'numpy<2')") from exc
