"""Audio bookkeeping for the microphone: a pre-roll ring, the clips being collected, WAV out.

Both address samples by their *stream-frame index* (0 = first sample of the stream), not by
position in an array, so a clip asked for at time T can be cut exactly from what the ring
already holds plus what the reader thread delivers afterwards, and a test can compare the
result with the source sample for sample. Neither class locks: the microphone's lock guards
both, and the reader thread is the only writer.
"""

from __future__ import annotations

import io
import sys
import threading
import wave
from array import array
from dataclasses import dataclass
from typing import Any, TypeAlias

# int16 samples in an ``array('h')``: the daemon keeps its pre-roll and builds its clips without
# numpy, which would cost it ~15 MB of resident memory (numpy stays in the capture process and
# in the tests, which may hand any int16 buffer, e.g. a numpy array, to ``write()``)
Samples: TypeAlias = "array[int]"


def as_samples(block: Any) -> Samples:
    """``block`` (any int16 buffer or sequence) as an ``array('h')``, without a copy if it is one."""
    if isinstance(block, array) and block.typecode == "h":
        return block
    out = array("h")
    try:
        out.frombytes(memoryview(block).cast("B"))
    except (TypeError, ValueError):  # not a contiguous buffer
        out = array("h", block)
    return out


def from_le_bytes(data: bytes) -> Samples:
    """Little-endian int16 bytes (a WAV body, the capture process's blocks) as samples."""
    out = array("h")
    out.frombytes(data)
    if sys.byteorder == "big":
        out.byteswap()
    return out


def to_le_bytes(samples: Samples) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


@dataclass(frozen=True)
class Clip:
    """A finished recording: ``wav`` is a complete mono int16 WAV file."""

    wav: bytes
    frames: int
    rate: int
    pre_roll_frames: int
    first_frame_index: int  # stream-frame index of the first sample (tests compare with the source)


class SampleRing:
    """The last ``capacity`` samples of a stream; ``start``..``end`` is what it can give back."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"ring capacity must be >= 0 samples, got {capacity}")
        self._data: Samples = array("h", bytes(2 * capacity))
        self.capacity = capacity
        self.start = 0  # oldest index still held
        self.end = 0  # index of the next sample to arrive = samples seen since reset()

    @property
    def nbytes(self) -> int:
        return len(self._data) * self._data.itemsize

    def reset(self) -> None:
        """Forget everything: a fresh stream after a gap starts again at index 0."""
        self.start = self.end = 0

    def write(self, block: Samples) -> None:
        block = as_samples(block)
        n = len(block)
        if self.capacity:
            tail = block[-self.capacity :]
            pos = (self.end + n - len(tail)) % self.capacity
            first = min(len(tail), self.capacity - pos)
            self._data[pos : pos + first] = tail[:first]
            self._data[: len(tail) - first] = tail[first:]
        self.end += n
        self.start = max(self.start, self.end - self.capacity)

    def read(self, first: int, last: int) -> Samples:
        """A copy of samples ``first``..``last`` (exclusive); both must lie in start..end."""
        if not self.start <= first <= last <= self.end:
            raise IndexError(f"samples {first}..{last} are not in the ring ({self.start}..{self.end})")
        if first == last:
            return array("h")
        pos, n = first % self.capacity, last - first
        if pos + n <= self.capacity:
            return self._data[pos : pos + n]
        return self._data[pos:] + self._data[: pos + n - self.capacity]


class Collector:
    """One clip being gathered: pre-roll from the ring, then post-roll from the live stream.

    It is *resolved* (its index range fixed) as soon as the stream's time mapping is known:
    at once when the stream runs, else when it opens. The post-roll always has its full
    length, counted from ``at`` or from the first sample after it that exists.
    """

    def __init__(self, at: float, pre_frames: int, post_frames: int) -> None:
        self.at = at
        self._pre = pre_frames
        self._post = post_frames
        self.first = self.anchor = self.last = 0
        self.resolved = False
        self.filled = 0
        self.error: str | None = None
        self.done = threading.Event()
        self._data: Samples = array("h")

    def resolve(self, ring: SampleRing, at_frame: int) -> None:
        self.anchor = max(at_frame, ring.start)
        self.first = max(self.anchor - self._pre, ring.start)
        self.last = self.anchor + self._post
        self._data = array("h", bytes(2 * (self.last - self.first)))
        # `at` may lie past the newest sample by more than the pre-roll (a device that lags
        # or has stalled): then nothing is held yet and the clip waits for the stream
        held = ring.read(self.first, min(self.last, ring.end)) if self.first < ring.end else self._data[:0]
        self._data[: len(held)] = held
        self.filled = len(held)
        self.resolved = True
        if self.filled == len(self._data):
            self.done.set()

    def offer(self, block: Samples, block_first: int) -> bool:
        """Take this block's part of the clip; True once the clip is complete."""
        block = as_samples(block)
        lo = max(block_first, self.first + self.filled)
        hi = min(block_first + len(block), self.last)
        if hi > lo:
            self._data[lo - self.first : hi - self.first] = block[lo - block_first : hi - block_first]
            self.filled = hi - self.first
        if self.first + self.filled >= self.last:
            self.done.set()
        return self.done.is_set()

    def finish(self, error: str) -> None:
        """Stop waiting: the stream failed or closed; what was gathered stays usable."""
        self.error = error
        self.done.set()

    def clip(self, rate: int) -> Clip:
        out = io.BytesIO()
        with wave.open(out, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(to_le_bytes(self._data[: self.filled]))
        pre = min(self.anchor - self.first, self.filled)
        return Clip(out.getvalue(), self.filled, rate, pre, self.first)
