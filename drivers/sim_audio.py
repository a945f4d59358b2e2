"""A fake microphone for simulation: ALSA's ``file`` plugin reading a raw test signal.

The real sounddevice -> PortAudio -> ALSA path runs; only the sound card is replaced by a
file. PortAudio lists ALSA's devices once, when sounddevice is first imported (and needs the
infile to exist then), so ``prepare_sim_audio()`` must run before that import. ALSA itself
re-reads ALSA_CONFIG_PATH at every stream open, so switching from one of *our* configs to
another later is fine (same device names, new infile): the last call wins for streams
opened afterwards. Switching away from any other config is refused. (The microphone driver
itself runs PortAudio in a capture process started with the environment of the moment, so
each of its opens sees the current ALSA_CONFIG_PATH; the refusal protects in-process users.)

The file plugin is not clocked (the microphone driver paces it) and returns garbage past the
file's end, so the simulated microphone reopens its stream ``restart_after`` seconds in,
which starts the file again from the top.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safehouse.device.core.files import make_folders, read_back
from safehouse.drivers.mic_source import MicrophoneError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    Signal = npt.NDArray[np.int16]

RATE = 16000
FILE_MODE = 0o640  # the signal and the ALSA config: the daemon's group may read them
_MARGIN = 2.0  # seconds of file left unread before a restart: PortAudio reads ahead a little

_MARKER = "# Written by safehouse (drivers/sim_audio.py): a fake microphone reading a raw file."
ASOUND_CONF = _MARKER + """
pcm.fakemic {{ type plug
  slave {{ pcm "fakemic_file" format S16_LE rate {rate} channels 1 }} }}
pcm.fakemic_file {{ type file
  slave.pcm {{ type null }}
  file "/dev/null"
  infile "{infile}"
  format "raw" }}
pcm.!default fakemic
"""


@dataclass(frozen=True)
class SimAudio:
    conf: Path  # the asound.conf that ALSA_CONFIG_PATH points at
    raw: Path  # int16 / 16 kHz / mono samples, no header
    seconds: float

    @property
    def restart_after(self) -> float:
        """Stream time after which the simulated microphone must reopen (file length - margin)."""
        return max(self.seconds - _MARGIN, self.seconds / 2)


def chirp_signal(seconds: float, *, rate: int = RATE, seed: int = 1234) -> Signal:
    """A slow 200 Hz -> 2 kHz chirp with a little seeded noise: audible, never repeating."""
    import numpy as np

    return np.concatenate(list(_chirp_chunks(seconds, rate=rate, seed=seed)))


def _chirp_chunks(seconds: float, *, rate: int = RATE, seed: int = 1234,
                  chunk: int = RATE) -> Iterator[Signal]:
    """The chirp one second at a time: writing 120 s at once would briefly cost ~60 MB of
    float64 temporaries, the daemon's peak memory; the phase is closed-form and the noise
    generator sequential, so the chunks join into exactly the same signal."""
    import numpy as np

    n = round(seconds * rate)
    f0, f1 = 200.0, 2000.0
    rng = np.random.default_rng(seed)
    for start in range(0, n, chunk):
        t = np.arange(start, min(n, start + chunk)) / rate
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * max(seconds, 1e-9)))
        noise = rng.normal(0.0, 0.01, len(t))
        yield np.clip((0.3 * np.sin(phase) + noise) * 32767, -32768, 32767).astype(np.int16)


def prepare_sim_audio(state_dir: Path, *, seconds: float = 120.0) -> SimAudio:
    """Write ``state_dir/sim-audio/{mic.raw,asound.conf}`` and point ALSA_CONFIG_PATH at them.

    Idempotent: a raw file of the right length is kept (it may be a test's own feed).
    Raises MicrophoneError if sounddevice was already imported under an ALSA config not
    written here: PortAudio would keep the devices it found then.
    """
    if seconds < 2 * _MARGIN:
        raise ValueError(f"sim audio needs at least {2 * _MARGIN:.0f} s of signal, got {seconds}")
    folder = Path(state_dir).absolute() / "sim-audio"
    conf, raw = folder / "asound.conf", folder / "mic.raw"
    current = os.environ.get("ALSA_CONFIG_PATH")
    if "sounddevice" in sys.modules and current != str(conf) and not _ours(current):
        raise MicrophoneError(
            f"cannot switch the simulated microphone to {conf}: sounddevice is already loaded under "
            f"ALSA_CONFIG_PATH={current!r}; call prepare_sim_audio() before anything imports "
            "sounddevice, or reuse the directory prepared first")
    make_folders(folder)  # explicit modes, and its files 0640: the umask may be 000
    if _size(raw) != round(seconds * RATE) * 2:  # a link in its place is replaced, never followed
        write_chirp(raw, seconds)
    text = ASOUND_CONF.format(rate=RATE, infile=raw)
    if _read(conf) != text.encode():
        _replace(conf, text.encode())
    os.environ["ALSA_CONFIG_PATH"] = str(conf)
    return SimAudio(conf, raw, seconds)


def write_chirp(raw: Path, seconds: float) -> None:
    """The signal file, written by a child interpreter unless numpy is loaded here already: the
    simulated daemon keeps numpy (~15 MB resident) out of its own process, as the real one does."""
    if "numpy" in sys.modules:
        _write_here(raw, seconds)
        return
    subprocess.run([sys.executable, "-m", "safehouse.drivers.sim_audio", str(raw), repr(seconds)],
                   check=True, timeout=120, stdin=subprocess.DEVNULL)


def _write_here(raw: Path, seconds: float) -> None:
    _replace_chunked(raw, (c.astype("<i2").tobytes() for c in _chirp_chunks(seconds)))


def _ours(conf: str | None) -> bool:
    return conf is not None and _read(Path(conf)).startswith(_MARKER.encode())


def _read(path: Path) -> bytes:
    """The file's bytes if it is a plain file (not a link) of at most 64 KB, else nothing."""
    try:
        return read_back(path, 65536)
    except OSError:
        return b""


def _size(path: Path) -> int | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _replace_chunked(path: Path, chunks: Iterable[bytes]) -> None:
    # write aside, then rename: a stream that has the old file open keeps reading it intact
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)  # a leftover (or a planted link) is never written through
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
    os.replace(tmp, path)


def _replace(path: Path, data: bytes) -> None:
    _replace_chunked(path, (data,))


if __name__ == "__main__":  # write_chirp()'s child: python -m safehouse.drivers.sim_audio RAW SECONDS
    _write_here(Path(sys.argv[1]), float(sys.argv[2]))
