"""Evidence capture for an alarm: snapshots and an audio clip, on worker threads, never the core.

The alarm itself never waits for any of this: the core hands over a ``Capture`` effect and
moves on. Each file is stored atomically, queued in the outbox's evidence lane as soon as it
exists (so a later camera hang cannot hold back a clip already taken), and when the capture
ends the core gets one ``EvidenceReady`` with the manifest and the reason for each failure.
A part that hangs is abandoned after its timeout and tried again on the next alarm.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar

from safehouse.device.core.inputs import EvidenceEvicted, EvidenceReady, Input
from safehouse.device.core.threads import Worker

_LOG = logging.getLogger(__name__)
T = TypeVar("T")


class Store(Protocol):
    def put(self, event_id: str, name: str, data: bytes, **meta: Any) -> Any: ...
    def write_manifest(self, event_id: str, entries: list[Any], failures: Mapping[str, str],
                       **extra: Any) -> dict[str, Any]: ...
    def enforce(self, delivered: Callable[[str], bool]) -> Any: ...


class Queue(Protocol):
    """The outbox side: file references in the evidence lane, and delivery state by event."""

    def append_file(self, topic: str, path: Any, key: str) -> int: ...
    def pending_keys(self, prefix: str) -> int: ...


@dataclass(frozen=True)
class CaptureSettings:
    offsets: tuple[float, ...] = (0.0, 1.0, 2.0)
    camera_timeout: float = 5.0
    post_roll: float = 20.0
    start_timeout: float = 10.0
    hold_off: float = 0.05  # longest a capture waits for its alarm to be on the wire first
    settle: float = 0.015  # then this long, for the alarm's last hops (socket, broker) to finish


class PartTimeout(Exception):
    """A camera or microphone call did not return in time; its thread is abandoned."""


def call_with_timeout(fn: Callable[[], T], timeout: float, what: str) -> T:
    """Run ``fn`` on its own daemon thread; give up waiting after ``timeout`` seconds."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    Worker(run, name=f"capture-{what}").start()  # never stopped: abandoned if it hangs
    if not done.wait(timeout):
        raise PartTimeout(f"{what} did not answer within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class CaptureService:
    def __init__(self, settings: CaptureSettings, *, camera: Any | None, microphone: Any | None,
                 store: Store, queue: Queue, topic: Callable[[str, str], str],
                 put: Callable[[Input], None], wake: Callable[[], None] = lambda: None) -> None:
        self.settings = settings
        self._camera, self._mic = camera, microphone
        self._store, self._queue, self._topic, self._put, self._wake = store, queue, topic, put, wake
        self._camera_ready = False
        self._camera_lock = threading.Lock()
        self._gate_lock = threading.Lock()
        self.stopping = threading.Event()  # every capture worker's wake hook sets it
        self._housekeeper: Worker | None = None
        self._workers: list[Worker] = []
        self._sent: dict[str, threading.Event] = {}  # alarm id -> its panic event was published
        self._sent_early: deque[str] = deque(maxlen=64)  # published before its capture was asked

    def parts(self) -> dict[str, Any]:
        return {"camera": self._camera, "microphone": self._mic}

    def start(self, housekeeping: float = 3600.0) -> None:
        """Prepare the parts once (a camera configured at start-up captures faster), and keep
        the evidence quota and retention enforced hourly even when no alarm comes."""
        self._housekeeper = Worker(partial(self._housekeeping, housekeeping),
                                   name="evidence-housekeeping", wake=self.stopping.set)
        self._housekeeper.start()
        if self._mic is not None:  # off the start-up path: a slow device must not delay READY
            Worker(self._start_microphone, name="microphone-start").start()
        if self._camera is not None:
            Worker(self._ensure_camera, name="camera-start").start()

    def _start_microphone(self) -> None:
        assert self._mic is not None
        try:
            self._mic.start()
        except Exception as exc:
            _LOG.error("microphone could not start: %s (it retries by itself)", exc)

    def request(self, alarm_id: str, test: bool, at: float) -> None:
        """Non-blocking: the capture runs on its own worker thread (nothing if nothing is enabled)."""
        if self._camera is None and self._mic is None:
            return
        self._workers = [w for w in self._workers if w.is_alive]
        gate = threading.Event()
        with self._gate_lock:
            self._sent[alarm_id] = gate
            if alarm_id in self._sent_early:  # the uplink was faster than us: no need to wait
                gate.set()
        worker = Worker(partial(self._capture, alarm_id, test, at), name=f"capture-{alarm_id[:8]}",
                        wake=self.stopping.set)
        self._workers.append(worker)
        worker.start()

    def _ensure_camera(self) -> str | None:
        """Start the camera if needed; return why it cannot be used, or None."""
        assert self._camera is not None
        with self._camera_lock:
            if self._camera_ready:
                return None
            try:
                call_with_timeout(self._camera.start, self.settings.start_timeout, "camera start")
            except Exception as exc:
                _LOG.error("camera could not start: %s", exc)
                return f"camera could not start: {exc}"
            self._camera_ready = True
            return None

    def alarm_sent(self, event_id: str) -> None:
        """The uplink put this event on the wire (any thread): its capture may start now."""
        with self._gate_lock:
            gate = self._sent.get(event_id)
            if gate is None:
                self._sent_early.append(event_id)
                return
        gate.set()

    def _capture(self, alarm_id: str, test: bool, at: float) -> None:
        # Capture starts once the alarm itself has left (or after hold_off, e.g. offline):
        # JPEG encoding must not compete with the alarm's last hops for the CPU.
        gate = self._sent.get(alarm_id)
        if gate is not None:
            gate.wait(self.settings.hold_off)
        with self._gate_lock:
            self._sent.pop(alarm_id, None)
        self.stopping.wait(self.settings.settle)
        entries: list[Any] = []
        failures: dict[str, str] = {}
        audio = None
        if self._mic is not None:
            audio = Worker(partial(self._record_audio, alarm_id, at, entries, failures),
                           name=f"audio-{alarm_id[:8]}")
            audio.start()
        if self._camera is not None:
            self._snapshots(alarm_id, at, entries, failures)
        # a bounded wait for the clip (record() watches no stop request, it ends by itself)
        if audio is not None and not audio.stop(self.settings.post_roll + 30.0):
            failures["microphone"] = "the audio clip was not finished in time"
        try:
            manifest = self._store.write_manifest(alarm_id, entries, failures, test=test)
            files = tuple(manifest["files"])
        except Exception as exc:
            _LOG.exception("evidence manifest for %s could not be written", alarm_id)
            failures["store"] = str(exc)
            files = ()
        self._put(EvidenceReady(alarm_id, test, files, dict(failures)))
        self._enforce()

    def _snapshots(self, alarm_id: str, at: float, entries: list[Any], failures: dict[str, str]) -> None:
        assert self._camera is not None
        reason = self._ensure_camera()
        if reason is not None:
            failures["camera"] = reason
            return
        for number, offset in enumerate(self.settings.offsets, start=1):
            delay = at + offset - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                return
            try:
                frame = call_with_timeout(self._camera.capture, self.settings.camera_timeout, "camera")
            except Exception as exc:
                failures["camera"] = f"snapshot {number}: {exc}"
                # Start it again at the next alarm: a camera that failed has released itself
                # (or is stuck, and start() says so at once); start() on a running one is a no-op.
                with self._camera_lock:
                    self._camera_ready = False
                return
            self._keep(alarm_id, f"snapshot-{number}.jpg", frame.jpeg, entries, failures, "camera",
                       content_type="image/jpeg", width=frame.width, height=frame.height,
                       offset_s=offset)

    def _record_audio(self, alarm_id: str, at: float, entries: list[Any],
                      failures: dict[str, str]) -> None:
        assert self._mic is not None
        try:
            clip = self._mic.record(self.settings.post_roll, at=at)
        except Exception as exc:
            failures["microphone"] = str(exc)
            return
        self._keep(alarm_id, "audio.wav", clip.wav, entries, failures, "microphone",
                   content_type="audio/wav", duration_s=round(clip.frames / clip.rate, 3),
                   rate=clip.rate, pre_roll_s=round(clip.pre_roll_frames / clip.rate, 3),
                   first_frame=clip.first_frame_index)

    def _keep(self, alarm_id: str, name: str, data: bytes, entries: list[Any],
              failures: dict[str, str], part: str, **meta: Any) -> None:
        try:
            entry = self._store.put(alarm_id, name, data, **meta)
            entries.append(entry)
            self._queue.append_file(self._topic(alarm_id, name), entry.path, key=f"{alarm_id}/{name}")
        except Exception as exc:
            _LOG.exception("evidence %s/%s could not be stored", alarm_id, name)
            failures[part] = f"{name} could not be stored: {exc}"
            return
        self._wake()

    def _housekeeping(self, interval: float) -> None:
        while not self.stopping.wait(interval):
            self._enforce()

    def _enforce(self) -> None:
        try:
            report = self._store.enforce(lambda event_id: self._queue.pending_keys(f"{event_id}/") == 0)
        except Exception:
            _LOG.exception("evidence quota could not be enforced")
            return
        if report.evicted_undelivered:
            self._put(EvidenceEvicted(tuple(report.evicted_undelivered)))

    def close(self, timeout: float = 1.0) -> None:
        self.stopping.set()
        for worker in [self._housekeeper, *self._workers]:
            if worker is not None:
                worker.stop(timeout)  # a capture still recording is logged and left (daemon)
        for part in (self._camera, self._mic):
            if part is not None:
                try:
                    part.close()
                except Exception:
                    _LOG.exception("closing %r failed", part)
