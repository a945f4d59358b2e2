"""The real camera path, on a Raspberry Pi with a camera module: run with ``pytest -m hw_raspberrypi``."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from safehouse.drivers.camera import Picamera2Camera


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
