"""The capture process: PortAudio lives here, never in the daemon (``python -m`` this module).

Why a process: a USB microphone unplugged mid-stream can leave ``Pa_ReadStream`` looping
forever inside PortAudio (PortAudio issue #1037), and nothing in-process can end that
safely: ``Pa_Terminate``/``Pa_CloseStream`` free the stream the stuck thread is still
inside (PortAudio #1179 shows the resulting SEGV). Killing this process ends the stuck
read, and the next process loads and initialises PortAudio afresh, re-listing the devices,
so a microphone plugged back in under a new card number is found again.

It opens the device at 16 kHz if the device takes it, else at its native rate (resampled
here, so numpy is loaded only in this process), and writes to stdout, each record
``<tag:u8><length:u32 LE><payload>``: one HEADER (JSON: device name, index, native rate, rate
used, block size), then BLOCK or OVERRUN records of int16 mono samples at the asked rate
(little-endian), or one ERROR (a message) before it exits. Reads are
blocking ``RawInputStream.read()`` calls, never a callback stream: cffi callbacks need
write+execute memory, which the unit's ``MemoryDenyWriteExecute=yes`` forbids.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import struct
import sys
from collections.abc import Callable
from typing import Any, BinaryIO

HEADER, BLOCK, OVERRUN, ERROR = 1, 2, 3, 4
RECORD = struct.Struct("<BI")
_PR_SET_PDEATHSIG = 1
_FALLBACK_RATES = (48000, 44100, 32000)


def send(out: BinaryIO, tag: int, payload: bytes) -> None:
    out.write(RECORD.pack(tag, len(payload)))
    out.write(payload)
    out.flush()


def _die_with_parent(parent: int) -> None:
    """A daemon killed with -9 must not leave this process reading the device forever."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def _choose_rate(sd: Any, index: int, target: int, native: int) -> tuple[int, str]:
    """The first rate the device accepts: the target, then its own, then the usual ones.

    PortAudio prints every refusal to stderr ("Expression 'paInvalidSampleRate' failed");
    an expected refusal must not fill the journal, so stderr is muted while we ask.
    """
    refused = []
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        for rate in dict.fromkeys((target, native, *_FALLBACK_RATES)):
            try:
                sd.check_input_settings(device=index, channels=1, dtype="int16", samplerate=rate)
            except Exception as exc:
                refused.append(f"{rate} Hz: {exc}")
                continue
            return rate, ""
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    return 0, "; ".join(refused)


def _converter(rate: int, target: int) -> Callable[[bytes], bytes]:
    """Blocks at the device's ``rate`` to ``target`` Hz, little-endian int16 either way. The
    resampler (numpy) runs here, so the daemon itself never loads numpy for its microphone."""
    if rate == target:
        return lambda data: data
    import numpy as np

    from safehouse.drivers.resample import Resampler

    resampler = Resampler(rate, target)
    return lambda data: resampler.process(np.frombuffer(data, dtype="<i2").astype(np.int16)) \
        .astype("<i2").tobytes()


def run(spec: dict[str, Any], out: BinaryIO) -> int:
    try:
        import sounddevice as sd
    except (ImportError, OSError) as exc:  # OSError: "PortAudio library not found"
        send(out, ERROR, str(exc).encode())
        return 2
    target, block = int(spec["rate"]), int(spec["blocksize"])
    try:
        info = sd.query_devices(spec["device"], "input")
        index, native = int(info["index"]), round(float(info["default_samplerate"]))
        rate, why = _choose_rate(sd, index, target, native)
        if not rate:
            send(out, ERROR, f"{info['name']!r} takes no rate we can use ({why})".encode())
            return 2
        frames = max(1, round(block * rate / target))
        stream = sd.RawInputStream(samplerate=rate, channels=1, dtype="int16", device=index,
                                   blocksize=frames)
        stream.start()
    except Exception as exc:
        send(out, ERROR, str(exc).encode())
        return 2
    header = {"device": info["name"], "index": index, "native_rate": native, "rate": rate,
              "blocksize": frames}
    send(out, HEADER, json.dumps(header).encode())
    convert = _converter(rate, target)
    try:
        while True:
            data, overflowed = stream.read(frames)
            send(out, OVERRUN if overflowed else BLOCK, convert(bytes(data)))
    except BrokenPipeError:  # the parent closed us: nothing left to say
        return 0
    except Exception as exc:
        send(out, ERROR, f"reading failed: {exc}".encode())
        return 1


def main(argv: list[str]) -> int:
    spec = json.loads(argv[1])
    # Ctrl-C in a terminal (`make run`) reaches the whole process group: the daemon stops this
    # process itself (and it dies with the daemon), so a SIGINT here would only be a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(int(spec["parent"]))
    try:
        return run(spec, sys.stdout.buffer)
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
