"""A camera that stops sending frames: the snapshot fails in time, and the camera comes back.

picamera2 runs as the test double (tests/rig/picamera2_double.py), which queues captures and
``stop()`` the way the real library does, so a stalled camera here hangs exactly where a real
one does. Time limits are checked the way the kiosk checks them: the capture goes through the
capture worker's own ``call_with_timeout`` at ``camera.timeout``, which would raise
``PartTimeout`` ("did not answer within") if the driver were late.
"""

from __future__ import annotations

import io
import threading
import uuid
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from safehouse.device.core import codes
from safehouse.device.core.effects import Emit
from safehouse.device.core.evidence import on_evidence_ready
from safehouse.device.core.inputs import EvidenceReady, Input
from safehouse.device.core.lifecycle import Step
from safehouse.device.core.state import Policy, initial_state
from safehouse.drivers.camera import CameraError
from safehouse.drivers.camera_pi import Picamera2Camera
from safehouse.services.capture import CaptureService, CaptureSettings, call_with_timeout
from safehouse.services.evidence import EvidenceStore
from safehouse.services.outbox import Outbox
from tests.rig.picamera2_double import Picamera2Double, installed

TIMEOUT = 1.0  # camera.timeout: the driver waits 0.6 s for a frame, 0.3 s for a release


def snapshot(camera: Picamera2Camera) -> Any:
    """One capture as the capture worker makes it: abandoned at camera.timeout."""
    return call_with_timeout(camera.capture, TIMEOUT, "camera")


def works_again(camera: Picamera2Camera) -> None:
    """Once its overdue release returns, the camera opens again and delivers."""
    for _ in range(100):
        if not camera.stuck:
            break
        threading.Event().wait(0.02)
    camera.start()
    assert Image.open(io.BytesIO(snapshot(camera).jpeg)).size == (320, 240)
    camera.close()


def started(**kwargs: Any) -> Picamera2Camera:
    camera = Picamera2Camera(width=320, height=240, timeout=TIMEOUT, **kwargs)
    camera.start()
    return camera


def test_the_double_blocks_stop_behind_a_stuck_capture_as_picamera2_does(
        picamera2: Picamera2Double) -> None:
    """The trap itself (picamera2#1065): without this the driver tests below would prove nothing."""
    camera = picamera2.Picamera2()
    camera.configure(camera.create_still_configuration())
    camera.start()
    camera.stall()
    with pytest.raises(TimeoutError):
        camera.capture_file(io.BytesIO(), format="jpeg", wait=0.05)
    outcome: list[BaseException | None] = []

    def stop() -> None:
        try:
            camera.stop()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    stopper = threading.Thread(target=stop, daemon=True)
    stopper.start()
    stopper.join(0.2)
    assert stopper.is_alive()  # stop() waits behind the capture job
    camera.cancel_all_and_flush()
    stopper.join(2)
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledError)  # its own job cancelled too
    camera.stop()  # with the queue empty, stop() goes through
    assert not camera._started


def test_a_hung_capture_fails_before_camera_timeout_and_the_next_capture_works(
        picamera2: Picamera2Double) -> None:
    camera = started()
    picamera2.cameras[0].stall()
    with pytest.raises(CameraError) as caught:
        snapshot(camera)
    message = str(caught.value)
    assert "no frame within 0.6 s" in message and "released and reopens" in message
    assert "ribbon cable" in message
    assert picamera2.call_names()[-3:] == ["cancel_all_and_flush", "stop", "close"]
    assert not camera.stuck
    camera.start()  # what the capture worker does at the next alarm
    frame = snapshot(camera)
    assert Image.open(io.BytesIO(frame.jpeg)).size == (320, 240)
    assert len(picamera2.cameras) == 2
    camera.close()


def test_a_stop_that_never_returns_leaves_the_camera_stuck_not_the_caller(
        picamera2: Picamera2Double) -> None:
    times = [100.0, 130.0]  # given up on at 100, asked to start again at 130
    camera = started(clock=lambda: times.pop(0) if len(times) > 1 else times[0])
    fake = picamera2.cameras[0]
    fake.stall()
    fake.stop_hangs = True  # libcamera's stop itself hangs in the kernel (picamera2#1275)
    with pytest.raises(CameraError) as caught:
        snapshot(camera)
    assert "did not stop within 0.3 s" in str(caught.value)
    assert "older than 0.3.20" not in str(caught.value)  # flushed: this is not a version problem
    assert camera.stuck
    with pytest.raises(CameraError, match="stuck, its stop\\(\\) has not returned for 30 s"):
        call_with_timeout(camera.start, 0.5, "camera start")  # refused at once, no second open
    assert len(picamera2.cameras) == 1
    fake.resume()  # the kernel lets go after all
    works_again(camera)


def test_close_is_bounded_when_stop_never_returns(picamera2: Picamera2Double) -> None:
    camera = started()
    picamera2.cameras[0].stop_hangs = True
    closer = threading.Thread(target=camera.close, daemon=True)
    closer.start()
    closer.join(TIMEOUT * 5)  # its bound is camera.timeout (a capture's turn) + 0.3 x that
    assert not closer.is_alive()
    assert camera.stuck and picamera2.call_names()[-2:] == ["cancel_all_and_flush", "stop"]
    with pytest.raises(CameraError, match="closed"):
        camera.start()


def test_before_picamera2_0_3_20_a_hang_still_fails_in_time_and_says_what_to_upgrade() -> None:
    with installed(version=(0, 3, 19)) as old:
        camera = started()
        fake = old.cameras[0]
        assert not hasattr(fake, "cancel_all_and_flush")
        fake.stall()
        with pytest.raises(CameraError) as caught:
            snapshot(camera)  # wait=N would have blocked here forever in this release
        message = str(caught.value)
        assert "no frame within 0.6 s" in message and "did not stop within 0.3 s" in message
        assert "older than 0.3.20" in message and "apt install python3-picamera2" in message
        assert camera.stuck and old.call_names()[-1] == "stop"  # queued behind the capture
        with pytest.raises(CameraError, match="stuck"):
            camera.start()
        fake.resume()  # frames again: the old capture finishes, then the queued stop
        works_again(camera)


def test_the_idle_camera_runs_at_5_fps_inside_the_advertised_range(picamera2: Picamera2Double) -> None:
    def controls(index: int) -> Any:
        return dict(picamera2.cameras[index].calls)["configure"]["controls"]["FrameDurationLimits"]

    Picamera2Camera(timeout=5.0).start()
    assert controls(0) == (200_000, 200_000)
    Picamera2Camera(timeout=0.5).start()  # 0.3 s to wait: two frames need 6.7 fps
    assert controls(1) == (150_000, 150_000)
    picamera2.camera_controls = {"FrameDurationLimits": (8_286, 100_000, 33_333)}
    Picamera2Camera(timeout=5.0).start()
    assert controls(2) == (100_000, 100_000)
    picamera2.camera_controls = {}  # e.g. a USB camera: configure() refuses unknown controls
    camera = Picamera2Camera(timeout=5.0)
    camera.start()
    assert "FrameDurationLimits" not in dict(picamera2.cameras[3].calls)["configure"]["controls"]
    camera.close()


class Evidence:
    """The capture worker with the real store and outbox, collecting what the core is handed."""

    def __init__(self, root: Path, camera: Picamera2Camera) -> None:
        self.ready: list[EvidenceReady] = []
        self.got = threading.Event()
        self.outbox = Outbox(root / "state", clock=lambda: 1_700_000_000.0)
        store = EvidenceStore(root / "evidence", quota_bytes=10**8, hard_limit_bytes=10**8,
                              clock=lambda: 1_700_000_000.0)
        self.service = CaptureService(
            CaptureSettings(offsets=(0.0,), camera_timeout=TIMEOUT, hold_off=0.0, settle=0.0),
            camera=camera, microphone=None, store=store, queue=self.outbox,
            topic=lambda event_id, name: f"kiosk/evidence/{event_id}/{name}", put=self._put)

    def _put(self, inp: Input) -> None:
        if isinstance(inp, EvidenceReady):
            self.ready.append(inp)
            self.got.set()

    def alarm(self, alarm_id: str) -> EvidenceReady:
        self.got.clear()
        self.service.request(alarm_id, False, 0.0)
        assert self.got.wait(10)
        return self.ready[-1]


def test_a_hung_camera_is_one_camera_fault_and_the_next_alarm_restores_it(picamera2: Picamera2Double,
                                                           tmp_path: Path) -> None:
    evidence = Evidence(tmp_path, Picamera2Camera(width=320, height=240, timeout=TIMEOUT))
    try:
        assert evidence.alarm("a1").failures == {}
        picamera2.cameras[0].stall()
        hung = evidence.alarm("a2")
        # The driver's own reason, in time (not the worker's "did not answer within 1 s"):
        # this is the camera_fault the precinct sees.
        assert hung.files == () and "snapshot 1:" in hung.failures["camera"]
        assert "no frame within 0.6 s" in hung.failures["camera"]
        back = evidence.alarm("a3")
        assert back.failures == {}
        assert [f["content_type"] for f in back.files] == ["image/jpeg"]
        step = Step(initial_state(Policy(), uuid.UUID(int=1)))  # what the core makes of them
        for ready in evidence.ready:
            on_evidence_ready(step, ready)
        assert [(e.type, e.code) for e in step.effects if isinstance(e, Emit)] == [
            ("evidence", None), ("evidence", None), ("camera_fault", codes.PERIPHERAL_TROUBLE),
            ("evidence", None), ("camera_restored", codes.PERIPHERAL_TROUBLE)]
    finally:
        evidence.service.close()
        evidence.outbox.close()
