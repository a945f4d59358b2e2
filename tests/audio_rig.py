"""The fake microphone shared by every test in one pytest process.

How tests share it: PortAudio lists ALSA's devices once per process, when sounddevice is
first imported, so one asound.conf made by the product's own ``prepare_sim_audio()`` (in a
per-process temp dir) is in place before that import, and its infile path never changes. A
test that needs particular samples calls ``feed(samples)``, which atomically replaces the
infile: the ALSA file plugin opens the infile when a stream opens, so every stream opened
after the feed reads exactly those samples from the first one (streams already open keep
the old file).

ALSA re-reads ALSA_CONFIG_PATH at each stream open, so another test may point it at its own
``prepare_sim_audio()`` directory (an in-process simulated daemon does); ``install()``
points it back at the rig every time it is called, and the helpers below all call it.

Outside CI a missing PortAudio skips the audio tests; in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from safehouse.drivers.sim_audio import RATE, SimAudio, prepare_sim_audio
from tests.conftest import IN_CI

_rig: SimAudio | None = None


def install() -> SimAudio:
    """The process-wide fake microphone (made on first call, before sounddevice loads), in force."""
    global _rig
    if _rig is None:
        folder = Path(tempfile.mkdtemp(prefix="safehouse-audio-"))
        atexit.register(shutil.rmtree, folder, True)
        _rig = prepare_sim_audio(folder, seconds=8.0)
    os.environ["ALSA_CONFIG_PATH"] = str(_rig.conf)
    return _rig


def sounddevice() -> ModuleType:
    """sounddevice, imported under the rig's config; skip (fail in CI) without PortAudio."""
    install()
    try:
        import sounddevice  # noqa: F401  (loads PortAudio)
    except OSError as exc:  # "PortAudio library not found"
        message = f"sounddevice cannot load PortAudio ({exc}); apt-get install libportaudio2"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return sys.modules["sounddevice"]


def feed(samples: np.ndarray[Any, np.dtype[np.int16]]) -> Path:
    """Make every stream opened from now on read ``samples`` (int16, 16 kHz, mono)."""
    raw = install().raw
    tmp = raw.with_name("feed.tmp")
    samples.astype("<i2").tofile(tmp)
    os.replace(tmp, raw)
    return raw


def noise(seconds: float, seed: int = 7) -> np.ndarray[Any, np.dtype[np.int16]]:
    """Seeded full-range noise: no stretch of it repeats, so an offset error cannot hide."""
    rng = np.random.default_rng(seed)
    return rng.integers(-32768, 32767, round(seconds * RATE), dtype=np.int16, endpoint=True)
