"""One capture process (drivers/mic_child.py) seen from the daemon: 16 kHz blocks, or why not.

``read(timeout)`` waits at most ``timeout`` seconds for the next block; a device that
stops delivering raises MicrophoneStalled instead of hanging the reader, and ``close()``
kills the process, which is the only safe way to end a read stuck inside PortAudio. A
device opened at its native rate is resampled in the capture process (numpy lives there, not
in the daemon), so callers always get ``rate`` Hz.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import subprocess
import sys
import time

from safehouse.device.core.errors import HardwareError
from safehouse.drivers.mic_child import BLOCK, ERROR, HEADER, OVERRUN, RECORD
from safehouse.drivers.ring_buffer import Samples, from_le_bytes

_KILL_WAIT = 2.0
# The pipe from the capture process holds ~0.5 s of 16 kHz audio (not the default 64 KiB = 2 s):
# what a stalled device leaves buffered, and what the reader may still take after a stall began.
_PIPE_BYTES = 16384


class MicrophoneError(HardwareError):
    """No audio could be had; the message names the device and what to check."""


class MicrophoneStalled(MicrophoneError):
    """The device stopped delivering audio while its stream should be running."""


class CaptureProcess:
    """Starts the capture process; ``wait_open()`` then waits for its device report."""

    def __init__(self, *, device: str | int | None, rate: int, blocksize: int) -> None:
        spec = {"device": device, "rate": rate, "blocksize": blocksize, "parent": os.getpid()}
        # the environment as it is now: ALSA_CONFIG_PATH may have changed since the last open
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "safehouse.drivers.mic_child", json.dumps(spec)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=dict(os.environ), close_fds=True)
        assert self._proc.stdout is not None
        self._fd = self._proc.stdout.fileno()
        with contextlib.suppress(OSError, AttributeError):  # Linux only; the default also works
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
        self._buf = bytearray()
        self.rate = rate
        self.device_name = ""
        self.native_rate = self.device_rate = 0

    def wait_open(self, timeout: float) -> None:
        """Wait for the device report (the process is killed if none comes within ``timeout``)."""
        try:
            tag, payload = self._record(timeout, "opening the device")
            if tag != HEADER:
                raise MicrophoneError(f"capture process said {tag} before its header")
            header = json.loads(payload)
        except BaseException:
            self.close()
            raise
        self.device_name = str(header["device"])
        self.native_rate = int(header["native_rate"])
        self.device_rate = int(header["rate"])  # what the device runs at (resampled to `rate`)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def read(self, timeout: float) -> tuple[Samples, bool]:
        """The next block at ``rate`` Hz and whether samples were lost before it."""
        tag, payload = self._record(timeout, "reading")
        if tag not in (BLOCK, OVERRUN):
            raise MicrophoneError(f"capture process sent record type {tag} mid-stream")
        return from_le_bytes(payload), tag == OVERRUN

    def close(self) -> None:
        """Kill the process (a read stuck in PortAudio ends with it); safe from any thread."""
        if self._proc.poll() is None:
            self._proc.kill()
        # still alive after SIGKILL: in uninterruptible sleep in the kernel's USB code, reaped later
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(_KILL_WAIT)
        assert self._proc.stdout is not None
        self._proc.stdout.close()

    def kill(self) -> None:
        """Make a blocked ``read()`` in another thread return (with MicrophoneError) now."""
        if self._proc.poll() is None:
            self._proc.kill()

    # --- framing ---------------------------------------------------------------------------

    def _record(self, timeout: float, doing: str) -> tuple[int, bytes]:
        deadline = time.monotonic() + timeout
        head = self._exactly(RECORD.size, deadline, timeout, doing)
        tag, length = RECORD.unpack(head)
        payload = self._exactly(length, deadline, timeout, doing)
        if tag == ERROR:
            raise MicrophoneError(payload.decode(errors="replace"))
        return tag, payload

    def _exactly(self, n: int, deadline: float, timeout: float, doing: str) -> bytes:
        while len(self._buf) < n:
            left = deadline - time.monotonic()
            ready = select.select([self._fd], [], [], max(0.0, left))[0] if left > 0 else []
            if not ready:
                raise MicrophoneStalled(f"no audio for {timeout:.1f} s while {doing}")
            chunk = os.read(self._fd, max(65536, n - len(self._buf)))
            if not chunk:
                raise MicrophoneError(f"the capture process ended ({self._exit_status()})")
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def _exit_status(self) -> str:
        try:
            code = self._proc.wait(_KILL_WAIT)
        except subprocess.TimeoutExpired:
            return "still running"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def __repr__(self) -> str:
        return f"<CaptureProcess pid={self._proc.pid} rate={self.rate}>"


def hint_for(exc: BaseException) -> str:
    """What a technician should check, for a microphone fault."""
    if isinstance(exc, MicrophoneStalled):
        return ("the capture was restarted (PortAudio re-initialised); if it keeps stalling, "
                "check the USB cable and power")
    if "No module named" in str(exc):
        return "install the sounddevice package (pip)"
    if "PortAudio library not found" in str(exc):
        return "install PortAudio (Debian: libportaudio2)"
    return "check microphone.device in config.toml (python3 -m sounddevice lists inputs)"
