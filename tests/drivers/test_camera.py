"""The camera as the capture worker sees it: JPEG bytes that decode, errors a technician can act on.

Picamera2Camera runs against a test double of picamera2 (tests/rig/picamera2_double.py), installed
in ``sys.modules`` for one test at a time; SimCamera runs for real, Pillow and all.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
from PIL import Image, ImageChops

from safehouse.device.core.errors import HardwareError
from safehouse.device.runtime import config, evidence_parts
from safehouse.drivers.camera import (
    Camera,
    CameraError,
    Frame,
    make_camera,
)
from safehouse.drivers.camera_pi import Picamera2Camera
from safehouse.drivers.camera_sim import SimCamera
from tests.rig.picamera2_double import Picamera2Double

HINTS = ("ribbon cable", "rpicam-hello --list-cameras", "video")


def decode(frame: Frame) -> Image.Image:
    image = Image.open(io.BytesIO(frame.jpeg))
    image.load()
    assert image.format == "JPEG"
    return image


def test_start_configures_once_for_stills_of_the_configured_size(picamera2: Picamera2Double) -> None:
    camera = Picamera2Camera(width=640, height=480, quality=42, camera_num=1)
    camera.start()
    camera.start()  # a second start is a no-op
    fake = picamera2.cameras[0]
    assert picamera2.call_names() == ["open", "create_still_configuration", "configure", "start"]
    assert fake.camera_num == 1
    assert dict(fake.calls)["create_still_configuration"] == {"size": (640, 480)}
    config = dict(fake.calls)["configure"]
    assert config["use_case"] == "still" and config["main"]["size"] == (640, 480)
    assert fake.options["quality"] == 42
    camera.close()


def test_three_captures_are_three_jpegs_without_reconfiguring(picamera2: Picamera2Double) -> None:
    ticks = iter([10.0, 11.0, 12.0])
    with Picamera2Camera(width=640, height=480, clock=lambda: next(ticks)) as camera:
        camera.start()
        frames = [camera.capture() for _ in range(3)]
    calls = picamera2.cameras[0].calls
    assert [arg for name, arg in calls if name == "capture_file"] == ["jpeg"] * 3
    assert picamera2.call_names().count("configure") == 1
    for frame in frames:
        assert decode(frame).size == (640, 480)
        assert (frame.width, frame.height) == (640, 480)
    assert [f.taken_at for f in frames] == [10.0, 11.0, 12.0]


def test_close_stops_then_closes_once_and_the_camera_stays_closed(picamera2: Picamera2Double) -> None:
    camera = Picamera2Camera()
    camera.start()
    camera.close()
    camera.close()
    assert picamera2.call_names()[-2:] == ["stop", "close"]
    assert picamera2.call_names().count("close") == 1
    with pytest.raises(CameraError, match="closed"):
        camera.capture()
    with pytest.raises(CameraError, match="closed"):
        camera.start()


def test_capture_before_start_says_so(picamera2: Picamera2Double) -> None:
    with pytest.raises(CameraError, match=r"call start\(\)"):
        Picamera2Camera().capture()
    assert picamera2.cameras == []


def test_a_failing_capture_is_a_camera_error_with_what_to_check(picamera2: Picamera2Double) -> None:
    with Picamera2Camera(width=320, height=240) as camera:
        camera.start()
        picamera2.cameras[0].capture_error = RuntimeError("Failed to queue request")
        with pytest.raises(CameraError) as caught:
            camera.capture()
        assert picamera2.call_names()[-2:] == ["stop", "close"]  # released, to be reopened
        with pytest.raises(CameraError, match=r"call start\(\)"):
            camera.capture()
        camera.start()
        assert len(picamera2.cameras) == 2
        assert decode(camera.capture()).size == (320, 240)
    assert isinstance(caught.value, HardwareError) and isinstance(caught.value, OSError)
    message = str(caught.value)
    assert "camera 0" in message and "Failed to queue request" in message
    assert all(hint in message for hint in HINTS)


@pytest.mark.parametrize("error", [
    RuntimeError("Camera __init__ sequence did not complete."),
    IndexError("list index out of range"),  # recent picamera2 with no camera attached
])
def test_a_camera_that_cannot_open_is_a_camera_error(picamera2: Picamera2Double, error: Exception) -> None:
    picamera2.open_error = error
    with pytest.raises(CameraError) as caught:
        Picamera2Camera(camera_num=0).start()
    assert all(hint in str(caught.value) for hint in HINTS)


def test_a_failed_start_releases_what_it_opened(picamera2: Picamera2Double) -> None:
    picamera2.start_error = RuntimeError("Failed to start camera")
    camera = Picamera2Camera()
    with pytest.raises(CameraError, match="cannot start"):
        camera.start()
    assert picamera2.call_names()[-2:] == ["stop", "close"]


def test_without_picamera2_the_error_names_the_apt_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail even on a Pi that has the real picamera2.
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError) as caught:
        Picamera2Camera().start()
    assert "sudo apt install python3-picamera2" in str(caught.value)
    assert "--system-site-packages" in str(caught.value)


class BrokenPicamera2Import:
    """A meta path finder failing the way apt's picamera2 does next to a venv numpy 2."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == "picamera2":
            raise ValueError("numpy.dtype size changed, may indicate binary incompatibility")


def test_a_picamera2_that_fails_to_import_is_a_camera_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    monkeypatch.setattr(sys, "meta_path", [BrokenPicamera2Import(), *sys.meta_path])
    with pytest.raises(CameraError) as caught:
        Picamera2Camera().start()
    assert "numpy.dtype size changed" in str(caught.value) and "numpy<2" in str(caught.value)


def test_importing_the_driver_does_not_import_picamera2() -> None:
    code = textwrap.dedent("""
        import sys
        class Tripwire:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("picamera2", "libcamera"):
                    raise AssertionError("imported " + name)
        sys.meta_path.insert(0, Tripwire())
        from safehouse.drivers.camera import make_camera
        make_camera("pi", device_id="SH-1", width=640, height=480)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr


def test_concurrent_captures_take_turns(picamera2: Picamera2Double) -> None:
    with Picamera2Camera(width=320, height=240) as camera:
        camera.start()
        picamera2.cameras[0].capture_seconds = 0.03
        frames: list[Frame] = []
        threads = [threading.Thread(target=lambda: frames.append(camera.capture())) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert len(frames) == 4
    assert picamera2.max_active == 1


@pytest.mark.parametrize("kwargs", [{"width": 641}, {"height": 0}, {"quality": 0}, {"quality": 101}])
def test_bad_settings_are_refused_up_front(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Picamera2Camera(**kwargs)
    with pytest.raises(ValueError):
        SimCamera(device_id="SH-1", **kwargs)


def sim(device_id: str = "SH-TEST-0001", **kwargs: Any) -> SimCamera:
    camera = SimCamera(device_id=device_id, wall=lambda: 1_700_000_000.0, **kwargs)
    camera.start()
    return camera


def comment(frame: Frame) -> str:
    text: bytes = decode(frame).info["comment"]
    return text.decode()


def test_sim_frame_is_a_real_jpeg_of_the_configured_size() -> None:
    with sim() as camera:
        assert decode(camera.capture()).size == (1280, 720)
    with sim(width=640, height=360, clock=lambda: 5.0) as camera:
        frame = camera.capture()
    assert decode(frame).size == (640, 360) and (frame.width, frame.height) == (640, 360)
    assert frame.taken_at == 5.0


def test_sim_quality_shows_in_the_file_size() -> None:
    with sim(quality=30) as low, sim(quality=95) as high:
        assert len(low.capture().jpeg) < len(high.capture().jpeg) * 0.8


def test_sim_stamps_device_wall_time_and_increasing_frame_numbers() -> None:
    with sim() as camera:
        texts = [comment(camera.capture()) for _ in range(3)]
    assert all("SH-TEST-0001" in t and "2023-11-14T22:13:20.000+00:00" in t for t in texts)
    assert [t.rsplit("frame ", 1)[1] for t in texts] == ["1", "2", "3"]


def test_sim_device_id_is_drawn_in_the_picture() -> None:
    with sim(device_id="SH-A-0001") as a, sim(device_id="SH-A-0001") as same, sim(device_id="SH-B-0002") as b:
        first, again, other = decode(a.capture()), decode(same.capture()), decode(b.capture())
    assert ImageChops.difference(first, again).getbbox() is None
    assert ImageChops.difference(first, other).getbbox() is not None


def test_sim_fail_raise_is_a_camera_error() -> None:
    with sim(fail="raise") as camera, pytest.raises(CameraError, match="simulated"):
        camera.capture()


def test_sim_fail_hang_blocks_until_close() -> None:
    camera = sim(fail="hang")
    outcome: list[BaseException] = []

    def take() -> None:
        try:
            camera.capture()
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=take, daemon=True)
    worker.start()
    worker.join(0.3)
    assert worker.is_alive() and outcome == []
    started = time.monotonic()
    camera.close()
    worker.join(2)
    assert not worker.is_alive() and time.monotonic() - started < 2
    assert len(outcome) == 1 and isinstance(outcome[0], CameraError)


def test_sim_frames_are_fast() -> None:
    with sim() as camera:
        camera.capture()
        started = time.perf_counter()
        for _ in range(10):
            camera.capture()
    assert (time.perf_counter() - started) / 10 < 0.1  # ~5 ms on the project's x86 box


def test_the_pi_camera_waits_inside_the_configured_camera_timeout() -> None:
    """camera.timeout reaches the driver, whose own waits (frame, then release) fit inside it."""
    tree: dict[str, dict[str, Any]] = {
        "device": {"id": "SH-1", "precinct": "P", "hardware": "pi"},
        "camera": {"timeout": 2.0, "width": 640, "height": 480}, "microphone": {"enabled": False}}
    camera = evidence_parts.capture_parts(config.from_tree(tree))["camera"]
    assert isinstance(camera, Picamera2Camera)
    assert camera.frame_wait + camera.release_wait < 2.0 <= camera.close_wait
    tree["device"]["hardware"] = "sim"
    assert isinstance(evidence_parts.capture_parts(config.from_tree(tree))["camera"], SimCamera)


def test_make_camera_builds_the_kind_asked_for() -> None:
    kwargs: dict[str, Any] = {"device_id": "SH-1", "width": 640, "height": 480}
    simulated, real = make_camera("sim", timeout=2.0, **kwargs), make_camera("pi", timeout=2.0, **kwargs)
    assert isinstance(simulated, SimCamera) and isinstance(real, Picamera2Camera)
    assert isinstance(simulated, Camera) and isinstance(real, Camera)
    simulated.close()
    real.close()
    with pytest.raises(ValueError, match="sim"):
        make_camera("usb")
    with pytest.raises(ValueError, match="fail"):
        make_camera("sim", device_id="SH-1", fail="sometimes")
