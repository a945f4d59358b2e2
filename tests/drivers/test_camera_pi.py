"""The real camera path, on a Raspberry Pi with a camera module: run with ``pytest -m hw_raspberrypi``."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from safehouse.drivers.camera_pi import Picamera2Camera


@pytest.mark.hw_raspberrypi
def test_real_camera_delivers_decodable_jpegs_of_the_configured_size() -> None:
    """Proves the driver against the real picamera2 and libcamera, which nothing off a Pi can.

    picamera2 imports from the system (apt python3-picamera2 through a --system-site-packages
    venv), the still configuration of the asked size is accepted and started, two captures in a
    row come back as JPEGs that Pillow decodes at exactly 640x480 (so the size reached libcamera
    and options["quality"] did not break the encoder), and close() really releases the camera:
    a second driver can open it again at once.
    """
    for _ in range(2):
        with Picamera2Camera(width=640, height=480, quality=80) as camera:
            camera.start()
            frames = [camera.capture(), camera.capture()]
        for frame in frames:
            image = Image.open(io.BytesIO(frame.jpeg))
            image.load()
            assert image.format == "JPEG"
            assert image.size == (640, 480) == (frame.width, frame.height)
        assert frames[0].taken_at < frames[1].taken_at


@pytest.mark.hw_raspberrypi
def test_real_camera_idles_at_the_capped_frame_rate_and_can_be_flushed() -> None:
    """The idle cap reaches libcamera, and this picamera2 can clear a hung capture.

    ``FrameDuration`` in the frame metadata is what the sensor really ran at (µs); a picamera2
    older than 0.3.20 has no ``cancel_all_and_flush`` and would leave a hung camera stuck.
    """
    with Picamera2Camera(width=640, height=480, timeout=5.0) as camera:
        camera.start()
        camera.capture()
        cam = camera._cam
        assert hasattr(cam, "cancel_all_and_flush"), "upgrade python3-picamera2 to >= 0.3.20"
        duration = cam.capture_metadata()["FrameDuration"]
        assert abs(duration - 1_000_000 / camera.frame_rate) < 5_000, duration
