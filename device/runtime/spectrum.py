"""The self-test's sound analysis, run in a short-lived child process.

The acoustic loop needs an FFT (which frequency is loudest), and numpy costs the daemon about
15 MB that it would keep until the next restart: the daily self-test would undo the lazy
imports that keep an idle kiosk small. So the daemon hands the 16-bit samples to
``python -m safehouse.device.runtime.spectrum RATE`` on stdin and reads two numbers back.
"""

from __future__ import annotations

import json
import subprocess
import sys

TIMEOUT = 20.0


def loudest(pcm: bytes, rate: int) -> tuple[float, float]:
    """(RMS level, loudest frequency in Hz) of little-endian 16-bit mono samples."""
    res = subprocess.run([sys.executable, "-m", __name__, str(rate)], input=pcm, capture_output=True,
                         timeout=TIMEOUT, check=False)
    if res.returncode != 0:
        tail = res.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"sound analysis failed (exit {res.returncode}): {tail[0]}")
    answer = json.loads(res.stdout)
    return float(answer["rms"]), float(answer["peak_hz"])


def _analyse(pcm: bytes, rate: int) -> dict[str, float]:
    import numpy as np

    heard = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(heard * heard)))
    spectrum = np.abs(np.fft.rfft(heard))
    peak_hz = float(np.argmax(spectrum[1:]) + 1) * rate / len(heard)
    return {"rms": rms, "peak_hz": peak_hz}


if __name__ == "__main__":
    print(json.dumps(_analyse(sys.stdin.buffer.read(), int(sys.argv[1]))))
