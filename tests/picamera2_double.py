"""A test double of the few picamera2 calls the camera driver makes; nothing else of picamera2.

picamera2 cannot be imported off a Pi (it needs libcamera's Python binding), so the driver's
tests put this module object into ``sys.modules["picamera2"]`` for the length of one test
(``installed()``). It mirrors what the real calls do, as read in raspberrypi/picamera2
(picamera2/picamera2.py, picamera2/request.py):

- ``Picamera2(camera_num=0)`` opens the camera; ``options`` starts as an empty dict;
- ``create_still_configuration(main={"size": (w, h)})`` returns a dict whose ``main`` holds
  the format and size; ``configure`` refuses to run while started, ``start`` before configuring;
- ``capture_file(file_output, format=...)`` encodes the frame with Pillow at
  ``options.get("quality", 90)`` and needs an explicit format for a file object;
- ``stop()`` may be repeated; ``close()`` stops first.

Every call is appended to ``calls`` as ``(name, argument)`` so tests can check order and count.
"""

from __future__ import annotations

import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from PIL import Image


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
        self._double = double
        self._config: dict[str, Any] | None = None
        self._started = False
        double.cameras.append(self)

    def create_still_configuration(self, main: dict[str, Any] | None = None) -> dict[str, Any]:
        self.calls.append(("create_still_configuration", main))
        stream = {"format": "BGR888", "size": (4608, 2592)} | (main or {})
        return {"use_case": "still", "main": stream, "buffer_count": 1}

    def configure(self, camera_config: dict[str, Any]) -> None:
        self.calls.append(("configure", camera_config))
        if self._started:
            raise RuntimeError("Camera must be stopped before configuring")
        self._config = camera_config

    def start(self) -> None:
        self.calls.append(("start", None))
        if self._config is None:
            raise RuntimeError("Camera has not been configured")
        if self._double.start_error is not None:
            raise self._double.start_error
        self._started = True

    def capture_file(self, file_output: Any, name: str = "main", format: str | None = None,
                     wait: Any = None) -> dict[str, Any]:
        self.calls.append(("capture_file", format))
        with self._double.lock:
            self._double.active += 1
            self._double.max_active = max(self._double.max_active, self._double.active)
        try:
            time.sleep(self.capture_seconds)
            if self.capture_error is not None:
                raise self.capture_error
            if not self._started or self._config is None:
                raise RuntimeError("capture_file on a camera that is not started (the real one blocks)")
            if format is None and not isinstance(file_output, str):
                raise RuntimeError("Cannot determine format to save")
            image = Image.new("RGB", self._config["main"]["size"], (40, 90, 160))
            image.save(file_output, format=format, quality=self.options.get("quality", 90))
            return {"ExposureTime": 10000}
        finally:
            with self._double.lock:
                self._double.active -= 1

    def stop(self) -> None:
        self.calls.append(("stop", None))
        self._started = False

    def close(self) -> None:
        self.calls.append(("close", None))
        self._started = False


class Picamera2Double(types.ModuleType):
    """The fake ``picamera2`` module: ``Picamera2`` builds FakePicamera2s listed in ``cameras``.

    Set ``open_error`` to make opening fail as it does with no camera attached, ``start_error``
    to make ``start()`` fail; ``max_active`` is the most captures that ever ran at once.
    """

    def __init__(self) -> None:
        super().__init__("picamera2")
        self.cameras: list[FakePicamera2] = []
        self.open_error: BaseException | None = None
        self.start_error: BaseException | None = None
        self.lock = threading.Lock()
        self.active = self.max_active = 0
        double = self

        class Picamera2(FakePicamera2):
            def __init__(self, camera_num: int = 0) -> None:
                super().__init__(double, camera_num)

        self.Picamera2 = Picamera2


@contextmanager
def installed() -> Iterator[Picamera2Double]:
    """Make ``import picamera2`` return a fresh double until the block ends, then undo it."""
    double = Picamera2Double()
    previous = sys.modules.get("picamera2")
    sys.modules["picamera2"] = double
    try:
        yield double
    finally:
        if previous is None:
            sys.modules.pop("picamera2", None)
        else:
            sys.modules["picamera2"] = previous
