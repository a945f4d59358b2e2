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

``usb_mic()`` adds a second device that, like a typical USB microphone's raw ``hw:`` PCM,
offers one rate only (48 kHz): tests/rig/alsa_fixed_rate.c, an ALSA ioplug plugin built here
with the system's cc and libasound headers. The microphone runs PortAudio in a capture
process that reads ALSA_CONFIG_PATH when it starts, so the extra device is seen by every
capture started inside the ``with``.
"""

from __future__ import annotations

import atexit
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from safehouse.drivers.ring_buffer import Clip
from safehouse.drivers.sim_audio import RATE, SimAudio, prepare_sim_audio
from tests.rig.availability import require_tool, unavailable
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

USB_RATE = 48000
_PLUGIN_SOURCE = Path(__file__).with_name("alsa_fixed_rate.c")

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


def clip_samples(clip: Clip) -> np.ndarray[Any, np.dtype[np.int16]]:
    """The int16 samples of a clip's WAV, after checking it is the firmware's 16 kHz mono int16."""
    with wave.open(io.BytesIO(clip.wav)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def sounddevice() -> ModuleType:
    """sounddevice, imported under the rig's config; skip (fail in CI) without PortAudio."""
    install()
    try:
        import sounddevice  # noqa: F401  (loads PortAudio)
    except OSError as exc:  # "PortAudio library not found"
        unavailable(f"sounddevice cannot load PortAudio ({exc}); apt-get install libportaudio2")
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


def tone(seconds: float, hz: float, rate: int, amplitude: float = 0.5) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A pure sine at ``rate`` Hz (the raw signal of the simulated USB microphone)."""
    t = np.arange(round(seconds * rate)) / rate
    return np.rint(amplitude * 32767 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


def _plugin() -> Path:
    """tests/rig/alsa_fixed_rate.c built once per process (needs cc and libasound2-dev)."""
    out = install().conf.parent / "libasound_module_pcm_fixedrate.so"
    if not out.exists():
        cc = require_tool("cc")
        if not Path("/usr/include/alsa/pcm_ioplug.h").exists():
            unavailable("ALSA headers missing: apt-get install libasound2-dev (APT_PACKAGES in the Makefile)")
        tmp = out.with_name(out.name + ".tmp")
        subprocess.run([cc, "-shared", "-fPIC", "-DPIC", "-O2", "-Wall", "-Werror", "-o", str(tmp),
                        str(_PLUGIN_SOURCE), "-lasound"], check=True, capture_output=True, timeout=120)
        os.replace(tmp, out)
    return out


@contextmanager
def usb_mic(infile: Path, *, rate: int = USB_RATE, name: str = "usbmic",
            xrun_after: int = 0) -> Iterator[str]:
    """A capture device ``name`` that only takes ``rate`` Hz and reads ``infile`` (raw int16);
    with ``xrun_after``, the stream overruns once after that many frames."""
    rig = install()
    conf = rig.conf.with_name(f"{name}.conf")
    conf.write_text(f'pcm_type.fixedrate {{ lib "{_plugin()}" }}\n'
                    f'pcm.{name} {{ type fixedrate infile "{infile.absolute()}" rate {rate} '
                    f'xrun_after {xrun_after} }}\n')
    os.environ["ALSA_CONFIG_PATH"] = f"{rig.conf}:{conf}"  # ALSA reads both, in order
    try:
        yield name
    finally:
        install()


def usb_mic_daemon(folder: Path, extra: str, *, hz: float = 440.0) -> DaemonProcess:
    """A started sim daemon (config ``extra``) whose ``usbmic`` is the 48 kHz-only device above,
    hearing a 60 s ``hz`` tone; the daemon keeps the device's config once started."""
    raw = folder / "tone.raw"
    tone(60, hz, USB_RATE).astype("<i2").tofile(raw)
    with usb_mic(raw):
        env = {"ALSA_CONFIG_PATH": os.environ["ALSA_CONFIG_PATH"]}
        return DaemonProcess(write_config(folder, extra, capture=True), folder / "ctl.sock", env=env).start()


class FifoFeed:
    """Writes ``samples`` into a FIFO, looping, until paused: a device whose reads can stop.

    Opened read-write, so the FIFO never lacks a reader (no EPIPE when a capture process is
    killed) and a reader's ``read()`` blocks, rather than ending, while the feed is paused.
    """

    def __init__(self, path: Path, samples: np.ndarray[Any, np.dtype[np.int16]]) -> None:
        os.mkfifo(path)
        self.path, self._data = path, samples.astype("<i2").tobytes()
        self._fd = os.open(path, os.O_RDWR)
        self.flowing = threading.Event()
        self.flowing.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fifo-feed", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pos, chunk = 0, 4096
        while not self._stop.is_set():
            if not self.flowing.wait(0.05):
                continue
            piece = self._data[pos : pos + chunk] or self._data[:chunk]
            pos = (pos + len(piece)) % len(self._data)
            os.write(self._fd, piece)  # blocks while the pipe is full: paced by the reader

    def close(self) -> None:
        self._stop.set()
        self.flowing.set()
        os.set_blocking(self._fd, False)
        try:  # drain, so a writer blocked on a full pipe wakes up and sees _stop
            while os.read(self._fd, 65536):
                pass
        except BlockingIOError:
            pass
        self._thread.join(2.0)
        os.close(self._fd)
