"""A test double of the few picamera2 calls the camera driver makes; nothing else of picamera2.

picamera2 cannot be imported off a Pi (it needs libcamera's Python binding), so the driver's
tests put this module object into ``sys.modules["picamera2"]`` for the length of one test
(``installed()``). It mirrors what the real calls do, as read in raspberrypi/picamera2
(picamera2/picamera2.py, picamera2/job.py, picamera2/controls.py):

- every capture is a ``Job`` (a ``concurrent.futures.Future`` underneath) queued on the
  camera's job list by ``dispatch_functions``; the event loop runs the jobs in order when a
  frame arrives, and a job without a frame stays at the head of the queue. Here the "event loop"
  runs in the calling thread at once while frames flow (``stall()`` stops them, as a loose
  ribbon cable does; ``resume()`` brings them back and runs what was queued);
- ``wait=N`` gives up after N s with ``TimeoutError`` but leaves the job queued; before 0.3.20
  a number only counts as "wait", forever; a ``signal_function`` is called when the job ends;
- ``stop()`` is itself a job queued *behind* the others (the NULL preview's event loop runs, so
  ``Picamera2.stop`` dispatches ``stop_``): behind a stuck capture it blocks until the capture
  ends or ``cancel_all_and_flush()`` (0.3.20 and later only) cancels every queued job, its own
  included (then it raises CancelledError). ``stop_hangs`` makes libcamera's stop itself hang,
  as a kernel stuck in streamoff does (picamera2#1275); ``close()`` stops first;
- ``create_still_configuration`` lets the frame duration span the sensor's range unless the
  caller's ``controls`` say otherwise, and ``configure`` refuses a control the camera does not
  advertise (``Controls.__setattr__``).

Every call is appended to ``calls`` as ``(name, argument)`` so tests can check order and count.
``installed()`` resumes every camera at the end, so no test leaves a thread blocked.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future
from contextlib import contextmanager
from typing import Any

from PIL import Image

# An IMX708's advertised range (µs), as camera_controls gives it: (min, max, default).
FRAME_DURATION_LIMITS = (8_286, 1_000_000_000, 33_333)


class Job:
    """picamera2/job.py: functions run one per frame until each says it is done."""

    def __init__(self, functions: list[Callable[[], tuple[bool, Any]]],
                 signal_function: Callable[[Job], None] | None) -> None:
        self._functions, self._signal_function = functions, signal_function
        self._future: Future[Any] = Future()
        self._future.set_running_or_notify_cancel()
        self._result: Any = None

    def execute(self) -> bool:
        try:
            while self._functions:
                done, self._result = self._functions[0]()
                if not done:
                    break
                self._functions.pop(0)
        except Exception as exc:
            self._future.set_exception(exc)
            self._functions = []
        return not self._functions

    def signal(self) -> None:
        if not self._future.done():
            self._future.set_result(self._result)
        if self._signal_function:
            self._signal_function(self)

    def get_result(self, timeout: float | None = None) -> Any:
        return self._future.result(timeout=timeout)

    def cancel(self) -> None:
        self._future.set_exception(CancelledError())


class FakePicamera2:
    """One opened camera. Set ``capture_error`` to make the next captures raise it."""

    def __init__(self, double: Picamera2Double, camera_num: int = 0) -> None:
        if double.open_error is not None:
            raise double.open_error
        self.camera_num = camera_num
        self.options: dict[str, Any] = {}
        self.calls: list[tuple[str, Any]] = [("open", camera_num)]
        self.capture_error: BaseException | None = None
        self.capture_seconds = 0.0  # how long a capture takes, to let threads overlap
        self.stop_hangs = False
        self.camera_controls = dict(double.camera_controls)
        self.lock = threading.Lock()  # protects _job_list, as in picamera2
        self._job_list: list[Job] = []
        self._double = double
        self._config: dict[str, Any] | None = None
        self._started = False
        self._frames = True
        self._unhang = threading.Event()
        double.cameras.append(self)

    def create_still_configuration(self, main: dict[str, Any] | None = None,
                                   controls: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("create_still_configuration", main))
        stream = {"format": "BGR888", "size": (4608, 2592)} | (main or {})
        defaults = {"FrameDurationLimits": (100, 1_000_000_000)} if "FrameDurationLimits" in \
            self.camera_controls else {}
        return {"use_case": "still", "main": stream, "buffer_count": 1,
                "controls": defaults | (controls or {})}

    def configure(self, camera_config: dict[str, Any]) -> None:
        self.calls.append(("configure", camera_config))
        if self._started:
            raise RuntimeError("Camera must be stopped before configuring")
        for name in camera_config["controls"]:
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
        self._config = camera_config

    def start(self) -> None:
        self.calls.append(("start", None))
        if self._config is None:
            raise RuntimeError("Camera has not been configured")
        if self._double.start_error is not None:
            raise self._double.start_error
        self._started = True

    def dispatch_functions(self, functions: list[Callable[[], tuple[bool, Any]]], wait: Any,
                           signal_function: Callable[[Job], None] | None = None,
                           immediate: bool = False) -> Any:
        if wait is None:
            wait = signal_function is None
        timeout = None if wait is True or self._double.version < (0, 3, 20) else wait
        job = Job(functions, signal_function)
        with self.lock:
            self._job_list.append(job)
        self._run_jobs()
        return job.get_result(timeout=timeout) if wait else job

    def _run_jobs(self) -> None:
        """The event loop's turn: run the queued jobs in order until one needs a frame."""
        finished = []
        with self.lock:
            while self._job_list and self._job_list[0].execute():
                finished.append(self._job_list.pop(0))
        for job in finished:
            job.signal()

    def capture_file(self, file_output: Any, name: str = "main", format: str | None = None,
                     wait: Any = None, signal_function: Callable[[Job], None] | None = None) -> Any:
        self.calls.append(("capture_file", format))
        return self.dispatch_functions([lambda: self._capture_file_(file_output, format)], wait,
                                       signal_function)

    def _capture_file_(self, file_output: Any, format: str | None) -> tuple[bool, Any]:
        if not self._frames:
            return False, None
        with self._double.lock:
            self._double.active += 1
            self._double.max_active = max(self._double.max_active, self._double.active)
        try:
            time.sleep(self.capture_seconds)
            if self.capture_error is not None:
                raise self.capture_error
            if not self._started or self._config is None:
                return False, None  # no frames come from a stopped camera
            if format is None and not isinstance(file_output, str):
                raise RuntimeError("Cannot determine format to save")
            image = Image.new("RGB", self._config["main"]["size"], (40, 90, 160))
            image.save(file_output, format=format, quality=self.options.get("quality", 90))
            return True, {"ExposureTime": 10000}
        finally:
            with self._double.lock:
                self._double.active -= 1

    def wait(self, job: Job, timeout: float | None = None) -> Any:
        return job.get_result(timeout=timeout)

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self._stop()

    def _stop(self) -> None:
        if self._started:
            self.dispatch_functions([self._stop_], wait=True, immediate=True)

    def _stop_(self) -> tuple[bool, None]:
        if self.stop_hangs:
            self._unhang.wait()
        self._started = False
        return True, None

    def close(self) -> None:
        self.calls.append(("close", None))
        self._stop()

    def stall(self) -> None:
        """No more frames, as with a dislodged ribbon cable."""
        self._frames = False

    def resume(self) -> None:
        """Frames again (and libcamera's stop returns): what was queued runs."""
        self._frames = True
        self._unhang.set()
        self._run_jobs()


class _Flushing(FakePicamera2):
    def cancel_all_and_flush(self) -> None:
        self.calls.append(("cancel_all_and_flush", None))
        with self.lock:
            for job in self._job_list:
                job.cancel()
            self._job_list = []


class Picamera2Double(types.ModuleType):
    """The fake ``picamera2`` module: ``Picamera2`` builds FakePicamera2s listed in ``cameras``.

    ``version`` picks the behaviour: before (0, 3, 20) there is no ``cancel_all_and_flush`` and
    ``wait=N`` waits forever. Set ``open_error`` to make opening fail as it does with no camera
    attached, ``start_error`` to make ``start()`` fail; ``camera_controls`` is what new cameras
    advertise (drop FrameDurationLimits for a camera without it); ``max_active`` is the most
    captures that ever ran at once.
    """

    def __init__(self, version: tuple[int, int, int] = (0, 3, 36)) -> None:
        super().__init__("picamera2")
        self.version = version
        self.cameras: list[FakePicamera2] = []
        self.open_error: BaseException | None = None
        self.start_error: BaseException | None = None
        self.camera_controls: dict[str, Any] = {"FrameDurationLimits": FRAME_DURATION_LIMITS}
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        double = self
        base = _Flushing if version >= (0, 3, 20) else FakePicamera2

        class Picamera2(base):  # type: ignore[valid-type,misc]
            def __init__(self, camera_num: int = 0) -> None:
                super().__init__(double, camera_num)

        self.Picamera2 = Picamera2

    def call_names(self, index: int = 0) -> list[str]:
        """The methods the driver called on camera ``index``, in order."""
        return [name for name, _ in self.cameras[index].calls]


@contextmanager
def installed(version: tuple[int, int, int] = (0, 3, 36)) -> Iterator[Picamera2Double]:
    """Make ``import picamera2`` return a fresh double until the block ends, then undo it."""
    double = Picamera2Double(version)
    previous = sys.modules.get("picamera2")
    sys.modules["picamera2"] = double
    try:
        yield double
    finally:
        for camera in double.cameras:
            camera.resume()
        if previous is None:
            sys.modules.pop("picamera2", None)
        else:
            sys.modules["picamera2"] = previous
