"""The microphone's cost: its capture process (CPU, peak RSS) and resampling a 48/44.1 kHz device.

PortAudio runs in a process of its own beside the daemon (drivers/mic_child.py), so the
daemon's own idle and RSS figures do not include it: this suite measures it, capturing the
simulated microphone for ``window`` seconds, beside a bare Python interpreter sleeping for the
same window (the baseline). Resampling runs in the daemon's reader thread: its CPU per second
of audio is set against that second itself (real time), i.e. the ratio is the share of a core.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.idle_process import _cpu_seconds, _peak_rss_mb


def capture_process(window: float) -> list[dict[str, Any]]:
    from safehouse.drivers.microphone import sim_microphone

    folder = Path(tempfile.mkdtemp(prefix="sh-bench-mic-", dir="/tmp"))
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    try:
        with sim_microphone(folder, pre_roll=10.0, seconds=max(8.0, window + 6.0)) as mic:
            time.sleep(1.0)
            pid = mic.capture_pid
            if pid is None:
                raise RuntimeError(f"the simulated microphone did not open: {mic.fault}")
            c0, b0, t0 = _cpu_seconds(pid), _cpu_seconds(bare.pid), time.monotonic()
            time.sleep(window)
            c1, b1, t1 = _cpu_seconds(pid), _cpu_seconds(bare.pid), time.monotonic()
            rss, bare_rss = _peak_rss_mb(pid), _peak_rss_mb(bare.pid)
            if mic.capture_pid != pid:
                raise RuntimeError("the capture process was restarted during the window")
    finally:
        bare.terminate()
        bare.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    span = t1 - t0
    return [
        {"figure": f"CPU of the microphone capture process over {span:.0f} s (sim, 16 kHz)",
         "value": 100 * (c1 - c0) / span, "unit": "% of one core", "baseline": 100 * (b1 - b0) / span,
         "target": 2.0, "note": "baseline: a bare Python interpreter sleeping"},
        {"figure": "peak RSS of the microphone capture process", "value": rss, "unit": "MB",
         "baseline": bare_rss, "target": 30.0, "note": "not counted in the daemon's own RSS"},
    ]


def resampling(seconds: float) -> list[dict[str, Any]]:
    from safehouse.drivers.resample import Resampler

    rows = []
    for source in (48000, 44100):
        samples = np.random.default_rng(1).integers(-8000, 8000, round(seconds * source)).astype(np.int16)
        block = source // 10  # the driver's 0.1 s blocks
        resampler = Resampler(source, 16000)
        t0 = time.process_time()
        for start in range(0, len(samples), block):
            resampler.process(samples[start : start + block])
        ms = (time.process_time() - t0) / seconds * 1000
        rows.append({"figure": f"CPU to resample 1 s of {source} Hz audio to 16 kHz", "value": ms,
                     "unit": "ms", "baseline": 1000.0, "target": 50.0,
                     "note": "baseline: the second of audio itself (ratio = share of one core)"})
    return rows


def run(window: float = 20.0) -> list[dict[str, Any]]:
    return capture_process(window) + resampling(min(window, 10.0))
