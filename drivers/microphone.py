"""The microphone part: its [microphone] settings, build(), and the real and simulated microphone.

The microphone is a pre-roll ring fed by one reader thread, and clips cut from it; the
simulated one is the same reader on ALSA's file plugin (drivers/sim_audio.py). Neither
sounddevice nor numpy is imported here: PortAudio lives in the capture process, so loading
the config (every CLI command does) costs neither.

PortAudio runs in a capture process (drivers/mic_child.py, seen through mic_source.py),
which opens the device at 16 kHz if it can, else at the device's own rate (typical USB
microphones only do 44.1/48 kHz) and the samples are resampled to 16 kHz; everything after
this module sees 16 kHz mono int16 either way. If no block arrives for ``stall_after``
seconds while the stream should be running (a USB microphone unplugged mid-stream can leave
PortAudio looping inside its read, PortAudio #1037), the reader kills that process and
starts a fresh one, which initialises PortAudio anew; the stall is reported like any other
fault and counted in ``stalls``.

Every sample has a stream-frame index, and the time of index 0 is kept, so "the audio
around time T" is exact. Before each read the reader waits until the block's last sample
is due: a real microphone blocks that long anyway, the simulator's ALSA file plugin does
not, and without pacing it would run ~2000x ahead into garbage.

A broken, missing or stalled microphone never stops the kiosk: the reader records the fault, logs
it once, and keeps reopening with a backoff; ``record()`` raises MicrophoneError instead. What
the microphone reports about itself (fault, rates, counters) is drivers/microphone_status.py.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from safehouse.device.core.settings import in_range, setting
from safehouse.device.core.threads import Worker
from safehouse.drivers.mic_source import CaptureProcess, MicrophoneError, MicrophoneStalled, hint_for
from safehouse.drivers.microphone_status import MicrophoneStatus
from safehouse.drivers.ring_buffer import Clip, Collector, SampleRing
from safehouse.drivers.sim_audio import RATE as SIM_RATE
from safehouse.drivers.sim_audio import prepare_sim_audio

__all__ = ["Clip", "MicrophoneError", "MicrophoneSettings", "MicrophoneStalled", "SoundDeviceMicrophone",
           "build", "sim_microphone"]

_LOG = logging.getLogger(__name__)

_FIRST_OPEN_WAIT = 5.0  # start() waits this long for the first open, so `fault` means something
_BACKOFF = (1.0, 30.0)
DAEMON_BLOCK = 4000  # 0.25 s at 16 kHz: what the daemon's microphone reads per wake-up
_GRACE = 5.0  # record() gives up this long after the clip should have been complete
_OPEN_TIMEOUT = 15.0  # a capture process that has not opened the device by then is killed
SIM_AUDIO_SECONDS = 120.0  # the sim microphone's signal file; the stream rewinds before its end


@dataclass(frozen=True)
class MicrophoneSettings:
    """[microphone]: whether an alarm records a clip, and how much before and after the press."""

    enabled: bool = setting(True, "record an audio clip when an alarm starts")
    pre_roll: float = setting(10.0, "seconds kept from before the press (0 = microphone closed "
                              "until an alarm)", in_range(0.0, 60.0))
    post_roll: float = setting(20.0, "seconds recorded after the press", in_range(1.0, 300.0))
    device: str = setting("", "sounddevice input device name, or its number ('' = the default input)")


class SoundDeviceMicrophone(MicrophoneStatus):
    """Keeps the last ``pre_roll`` seconds; ``record()`` adds the post-roll and returns a clip.

    With ``pre_roll == 0`` the device stays closed until a clip is asked for. ``device`` is a
    sounddevice name or index (None or "" = the default input; a string of digits is an
    index). ``restart_after`` (seconds of stream time) closes and reopens the stream, which
    rewinds the simulator's file plugin.
    ``stall_after``: seconds without a block before the capture is declared stalled and
    restarted (several blocks' worth; a real device delivers one every ``blocksize / rate`` s).
    ``blocksize``: the reader thread wakes once a block while the stream runs; the daemon uses
    ``DAEMON_BLOCK`` (a quarter second: 4 wake-ups/s instead of 10), clips are cut to the sample
    whatever the block size.
    """

    def __init__(self, *, rate: int = 16000, pre_roll: float = 10.0, device: str | int | None = None,
                 blocksize: int = 1600, clock: Callable[[], float] = time.monotonic,
                 restart_after: float | None = None, stall_after: float = 5.0) -> None:
        if rate <= 0 or blocksize <= 0 or pre_roll < 0 or stall_after <= 2 * blocksize / max(rate, 1):
            raise ValueError(f"microphone: need rate > 0, blocksize > 0, pre_roll >= 0, stall_after "
                             f"> two blocks (got {rate}, {blocksize}, {pre_roll}, {stall_after})")
        self.rate, self.pre_roll, self.blocksize = rate, pre_roll, blocksize
        # "2" from the config is PortAudio's index, as `python3 -m sounddevice` prints it: to
        # sounddevice a str is a name to match, and no device's name is a bare number.
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.device = None if device == "" else device
        self._clock = clock
        self.stall_after = stall_after
        self._restart_frames = round(restart_after * rate) if restart_after else None
        # one block more than the pre-roll: `at` may fall up to a block past the newest sample
        self._ring = SampleRing(round(pre_roll * rate) + blocksize if pre_roll else 0)
        self._lock = threading.Lock()
        self._pending: list[Collector] = []
        self._anchor: float | None = None  # clock time of stream-frame 0 while a stream is open
        self._fault: str | None = None
        self._wake = threading.Event()
        self._worker = Worker(self._main, name="microphone-reader", wake=self._interrupt)
        self._attempted = threading.Event()
        self._blocks = 0  # blocks read in this object's life, to tell a relapse from a fault
        self._source: CaptureProcess | None = None  # the open capture process
        self._opened: CaptureProcess | None = None  # the last one that opened the device
        self._stalls = 0
        self._overflows = 0

    def start(self) -> None:
        """Start the reader; with a pre-roll, wait (briefly) for the first open attempt."""
        if self._worker.stopping.is_set():
            raise MicrophoneError(f"microphone ({self._name}) is closed; make a new one")
        if self._worker.started:
            return
        self._worker.start()
        if self.pre_roll > 0:
            self._attempted.wait(_FIRST_OPEN_WAIT)

    def record(self, post_roll: float, *, at: float | None = None) -> Clip:
        """Block until ``post_roll`` s after ``at`` (default now) are captured; run off the core loop.

        The clip starts up to ``pre_roll`` s before ``at``. If the stream fails midway the
        audio gathered so far is returned; with none at all MicrophoneError says why.
        """
        if post_roll < 0:
            raise ValueError(f"post_roll must be >= 0 seconds, got {post_roll}")
        if not self._worker.started:
            raise MicrophoneError(f"microphone ({self._name}) is not started; call start() first")
        if not self.is_running:
            raise MicrophoneError(f"microphone ({self._name}) is closed" if self._worker.stopping.is_set()
                                  else f"microphone: {self._fault}")
        now = self._clock()
        at = now if at is None else at
        job = Collector(at, round(self.pre_roll * self.rate), round(post_roll * self.rate))
        with self._lock:
            if self._worker.stopping.is_set():
                raise MicrophoneError(f"microphone ({self._name}) is closed")
            if self._anchor is not None:
                job.resolve(self._ring, self._frame_at(at))
            if not job.done.is_set():
                self._pending.append(job)
        self._wake.set()  # opens an idle pre_roll=0 stream, or retries a failed one now
        if not job.done.wait(max(at, now) + post_roll + _GRACE - now):
            with self._lock:
                if job in self._pending:
                    self._pending.remove(job)
            job.finish(f"no audio from {self._name} within {post_roll + _GRACE:.0f} s")
        if job.error is not None and not job.filled:
            raise MicrophoneError(f"microphone: {job.error}")
        if job.error is not None:
            _LOG.warning("microphone clip cut short at %.1f s: %s", job.filled / self.rate, job.error)
        return job.clip(self.rate)

    def close(self) -> None:
        """Stop the reader and release the device; safe to repeat."""
        self._worker.stop()  # a stuck reader is logged, not waited for
        self._finish_all("the microphone was closed")

    def __enter__(self) -> SoundDeviceMicrophone:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # --- reader thread ------------------------------------------------------------------------

    def _interrupt(self) -> None:
        """The worker's wake hook: end the reader's wait, and a read blocked on the device."""
        self._wake.set()
        with self._lock:
            source = self._source
        if source is not None:
            source.kill()  # a read waiting for a slow (or stalled) device returns now

    def _frame_at(self, t: float) -> int:
        assert self._anchor is not None
        return round((t - self._anchor) * self.rate)

    def _main(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug, not a device fault: say so loudly, release the waiters
            _LOG.exception("microphone reader thread crashed")
            self._fault = f"the microphone reader crashed ({exc!r}); restart the service"
            self._finish_all(self._fault)
        finally:
            self._attempted.set()

    def _run(self) -> None:
        backoff, fresh = _BACKOFF[0], True
        while not self._worker.stopping.is_set():
            if self.pre_roll == 0 and not self._pending:
                self._wake.wait()  # on demand: closed until a record() arrives
                self._wake.clear()
                continue
            self._wake.clear()
            blocks = self._blocks
            try:
                restart = self._session(fresh)
            except Exception as exc:
                if self._worker.stopping.is_set():
                    break
                if isinstance(exc, MicrophoneStalled) and self._blocks != blocks:
                    self._stalls += 1  # it delivered, then stopped: the process is gone now
                self._failed(exc)
            else:
                backoff, fresh = _BACKOFF[0], not restart
                continue
            finally:
                self._attempted.set()
            if self._blocks != blocks:
                backoff = _BACKOFF[0]  # it worked for a while: a new fault starts a new backoff
            fresh = True
            self._wake.wait(backoff)  # a record() in the meantime retries at once
            backoff = min(backoff * 2, _BACKOFF[1])

    def _session(self, fresh: bool) -> bool:
        source = self._open(fresh)
        try:
            return self._pump(source)
        finally:
            with self._lock:
                self._anchor = None
                self._source = None
            source.close()

    def _open(self, fresh: bool) -> CaptureProcess:
        source = CaptureProcess(device=self.device, rate=self.rate, blocksize=self.blocksize)
        with self._lock:
            self._source = source  # from here close() can end the wait below
        if self._worker.stopping.is_set():
            source.kill()
        try:
            source.wait_open(max(_OPEN_TIMEOUT, self.stall_after))
        except BaseException:
            with self._lock:
                self._source = None
            raise
        with self._lock:
            if self._opened is None or (source.device_name, source.device_rate) != (
                    self._opened.device_name, self._opened.device_rate):
                _LOG.info("microphone %s: %r, native %d Hz, opened at %d Hz%s", self._name,
                          source.device_name, source.native_rate, source.device_rate,
                          "" if source.device_rate == self.rate else f", resampled to {self.rate} Hz")
            self._opened = source
            if fresh:
                self._ring.reset()
            self._anchor = self._clock() - self._ring.end / self.rate
        return source

    def _pump(self, source: CaptureProcess) -> bool:
        """Read until told to stop; True if the stream is due a planned restart."""
        read = 0
        while not self._worker.stopping.is_set():
            assert self._anchor is not None
            # Pacing: never hold a sample before its time (a real device blocks until then).
            due = self._anchor + (self._ring.end + self.blocksize) / self.rate - self._clock()
            if due > 0 and self._worker.stopping.wait(due):
                break
            block, overflowed = source.read(self.stall_after)
            self._overflows += overflowed
            now = self._clock()
            with self._lock:
                for job in list(self._pending):
                    if not job.resolved:
                        job.resolve(self._ring, self._frame_at(job.at))
                    if job.offer(block, self._ring.end):
                        self._pending.remove(job)
                self._ring.write(block)
                if self._fault is not None:
                    _LOG.info("microphone %s works again", self._name)
                    self._fault = None
                lag = now - (self._anchor + self._ring.end / self.rate)
                if overflowed or lag > max(2 * self.blocksize / self.rate, 0.25):
                    # samples were lost or the device runs slow: re-attach the mapping to now
                    _LOG.debug("microphone %s: overflow=%s lag=%.3f s, re-anchored",
                               self._name, overflowed, lag)
                    self._anchor = now - self._ring.end / self.rate
                idle = self.pre_roll == 0 and not self._pending
                if idle:
                    self._anchor = None  # a record() from now on waits for the next open
            self._blocks += 1
            self._attempted.set()
            read += len(block)
            if idle:
                return False
            if self._restart_frames is not None and read >= self._restart_frames:
                return True
        return False

    def _failed(self, exc: BaseException) -> None:
        reason = f"{self._name}: {exc}; {hint_for(exc)}"
        with self._lock:
            first = reason != self._fault
            self._fault = reason
        if first:
            _LOG.warning("microphone: %s; retrying with backoff up to %.0f s", reason, _BACKOFF[1])
        self._finish_all(reason)

    def _finish_all(self, reason: str) -> None:
        with self._lock:
            jobs, self._pending = self._pending, []
        for job in jobs:
            job.finish(reason)


def build(settings: MicrophoneSettings, *, simulated: bool, state_dir: Path) -> SoundDeviceMicrophone | None:
    """The microphone the config asks for, not yet started; None when off or unavailable.

    Simulated with no ``microphone.device``, the kiosk hears a chirp file kept in ``state_dir``
    through ALSA's file plugin; a simulated microphone that cannot be prepared is logged and
    left out (the alarm goes without a clip, the kiosk starts all the same). Otherwise the
    configured (or default) input, read in the daemon's quarter-second blocks.
    """
    if not settings.enabled:
        return None
    device = settings.device or None
    if simulated and device is None:
        try:
            return sim_microphone(state_dir, pre_roll=settings.pre_roll, seconds=SIM_AUDIO_SECONDS)
        except Exception as exc:
            _LOG.error("simulated microphone unavailable: %s", exc)
            return None
    return SoundDeviceMicrophone(pre_roll=settings.pre_roll, device=device, blocksize=DAEMON_BLOCK)


def sim_microphone(state_dir: Path, *, pre_roll: float = 10.0, seconds: float = 120.0,
                   **kwargs: Any) -> SoundDeviceMicrophone:
    """The simulated kiosk's microphone: prepared fake device, restarted before the file ends,
    read in the daemon's quarter-second blocks unless ``blocksize`` says otherwise."""
    audio = prepare_sim_audio(state_dir, seconds=seconds)
    kwargs.setdefault("blocksize", DAEMON_BLOCK)
    return SoundDeviceMicrophone(pre_roll=pre_roll, rate=SIM_RATE, restart_after=audio.restart_after,
                                 **kwargs)
