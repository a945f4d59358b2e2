"""The daemon's side of `safehouse accept`: snapshots, a long recording and the parts' state.

These run inside the running daemon (its control socket), so they use the very camera and
microphone objects that serve alarms, under the unit's sandbox, user and device list — the
point of the acceptance. Nothing here changes what the public sees.
"""

from __future__ import annotations

import io
import logging
import threading
import wave
from collections.abc import Mapping
from typing import Any

from safehouse.services.capture import PartTimeout, call_with_timeout

_LOG = logging.getLogger(__name__)
MAX_SNAPSHOTS = 10
MAX_RECORD_SECONDS = 600.0
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's start-of-frame header; None if it is not a JPEG.

    Read from the bytes, not from what the driver says it asked for: a camera that ignores
    the configured size must be caught here.
    """
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            i += 2
            continue
        length = int.from_bytes(data[i + 2:i + 4], "big")
        if marker in _SOF_MARKERS and i + 9 <= len(data):
            height = int.from_bytes(data[i + 5:i + 7], "big")
            width = int.from_bytes(data[i + 7:i + 9], "big")
            return width, height
        if length < 2:
            return None
        i += 2 + length
    return None


def snapshots(camera: Any | None, count: int, timeout: float) -> dict[str, Any]:
    """Take ``count`` snapshots one after the other; each one's real JPEG size and length."""
    if camera is None:
        return {"enabled": False, "shots": []}
    if not 1 <= count <= MAX_SNAPSHOTS:
        raise ValueError(f"count must be 1-{MAX_SNAPSHOTS}")
    try:
        call_with_timeout(camera.start, max(timeout, 10.0), "camera start")
    except Exception as exc:
        return {"enabled": True, "error": f"camera could not start: {type(exc).__name__}: {exc}", "shots": []}
    shots: list[dict[str, Any]] = []
    while len(shots) < count:
        try:
            frame = call_with_timeout(camera.capture, timeout, "camera")
        except PartTimeout as exc:
            # A hung camera is not asked again: each try would wait the whole timeout once more
            # (up to 10 x 60 s) and leave one more thread stuck on it.
            shots.append({"error": f"{type(exc).__name__}: {exc}"})
            shots += [{"error": "not taken: the camera did not answer the snapshot before"}
                      for _ in range(count - len(shots))]
            break
        except Exception as exc:
            shots.append({"error": f"{type(exc).__name__}: {exc}"})
            continue
        size = jpeg_size(frame.jpeg)
        shots.append({"jpeg": size is not None, "width": size[0] if size else None,
                      "height": size[1] if size else None, "bytes": len(frame.jpeg)})
    return {"enabled": True, "shots": shots}


def record(microphone: Any | None, seconds: float) -> dict[str, Any]:
    """Record ``seconds`` of audio through the alarm path; count frames, level and overflows.

    ``overflows`` is the driver's own counter (input overflows, i.e. samples PortAudio lost
    because the reader fell behind), read before and after; None when the driver has none.
    """
    if microphone is None:
        return {"enabled": False}
    if not 0 < seconds <= MAX_RECORD_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_RECORD_SECONDS:g}]")
    before = _counter(microphone, "overflows")
    clip = microphone.record(seconds)
    after = _counter(microphone, "overflows")
    import numpy as np

    with wave.open(io.BytesIO(clip.wav)) as wav:
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    heard = samples[clip.pre_roll_frames:]
    rms = float(np.sqrt(np.mean(heard * heard))) if len(heard) else 0.0
    return {"enabled": True, "rate": clip.rate, "frames": len(heard),
            "expected_frames": round(seconds * clip.rate), "level": round(rms, 1),
            "overflows": None if before is None or after is None else after - before,
            "device": str(getattr(microphone, "device", None) or "default")}


class Recorder:
    """One long recording at a time, on its own thread: a 60 s recording must not hold one of
    the control socket's few workers for a minute. ``start()`` answers at once; ``poll()``
    says whether it runs, or gives its result (or why it failed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._result: dict[str, Any] | None = None

    def start(self, microphone: Any | None, seconds: float) -> dict[str, Any]:
        if microphone is None:
            raise ValueError("the microphone is disabled (microphone.enabled = false)")
        if not 0 < seconds <= MAX_RECORD_SECONDS:
            raise ValueError(f"seconds must be in (0, {MAX_RECORD_SECONDS:g}]")
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise ValueError("a recording is already running")
            self._result = None
            self._thread = threading.Thread(target=self._run, args=(microphone, seconds),
                                            name="accept-recording", daemon=True)
            self._thread.start()
        return {"started": True, "seconds": seconds}

    def _run(self, microphone: Any, seconds: float) -> None:
        try:
            result = record(microphone, seconds)
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        with self._lock:
            self._result = result

    def poll(self) -> dict[str, Any]:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return {"running": True}
            return {"running": False, "result": self._result}


def parts(capture_parts: Mapping[str, Any], keypad: Any | None) -> dict[str, Any]:
    """What the acceptance polls while the technician unplugs and replugs things."""
    mic = capture_parts.get("microphone")
    camera = capture_parts.get("camera")
    view: dict[str, Any] = {"camera": {"enabled": camera is not None}}
    view["microphone"] = ({"enabled": False} if mic is None else
                          {"enabled": True, "fault": mic.fault, "capturing": bool(mic.is_capturing),
                           "pre_roll": mic.pre_roll, "overflows": _counter(mic, "overflows")})
    view["keypad"] = ({"configured": False} if keypad is None else
                      {"configured": True, "connected": bool(keypad.is_connected)})
    return view


def _counter(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
