"""Streaming sample-rate conversion to the firmware's 16 kHz: a polyphase windowed-sinc FIR.

Many USB microphones only do 44.1 or 48 kHz, and PortAudio refuses a rate more than 1 %
off what the device offers, so the capture runs at the device's rate and is converted here
(48000 -> 16000 is 1:3, 44100 -> 16000 is 160:441). The low-pass filter stops everything
above the output's Nyquist frequency by ~80 dB, so a 10 kHz whistle in the room does not
come back as a 6 kHz ghost in the evidence. Blocks may be any length; the filter state
carries over between them, so a stream cut into blocks gives the same samples as one piece.
The output lags the input by half the filter (~1.5 ms), which nobody listening can hear.
"""

from __future__ import annotations

from math import gcd
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

Samples = npt.NDArray[np.int16]  # the capture process converts its blocks with this (mic_child.py)

_HALF = 24  # filter half-length in output periods: ~80 dB stop band, pass band to ~0.8 Nyquist
_BETA = 7.86  # Kaiser window for 80 dB (0.1102 * (80 - 8.7))


class Resampler:
    """Converts int16 mono blocks from ``source`` Hz to ``target`` Hz, keeping state between blocks."""

    def __init__(self, source: int, target: int) -> None:
        if source <= 0 or target <= 0:
            raise ValueError(f"sample rates must be > 0 (got {source} -> {target})")
        g = gcd(source, target)
        self.source, self.target = source, target
        self.up, self.down = target // g, source // g
        self._taps = self._polyphase(self.up, self.down)  # (up, K): row p = the taps of phase p
        k = self._taps.shape[1]
        self._hist: np.ndarray[Any, np.dtype[np.float64]] = np.zeros(k - 1)
        self._base = -(k - 1)  # input index of _hist[0]
        self._next = 0  # index of the next output sample

    @staticmethod
    def _polyphase(up: int, down: int) -> np.ndarray[Any, np.dtype[np.float64]]:
        n = 2 * _HALF * max(up, down) + 1  # taps at the upsampled rate
        width = (80 - 7.95) / (14.36 * n)  # Kaiser transition width, cycles per upsampled sample
        cutoff = 0.5 / max(up, down) - width / 2  # the stop band starts at the lower Nyquist
        m = np.arange(n) - (n - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * m) * np.kaiser(n, _BETA)
        h *= up / h.sum()  # unit gain at DC after zero-stuffing by `up`
        k = -(-n // up)
        padded = np.zeros(k * up)
        padded[:n] = h
        return padded.reshape(k, up).T.copy()  # taps[p, j] = h[p + j * up]

    def process(self, block: Samples) -> Samples:
        """The output samples that ``block`` completes (about len(block) * target / source)."""
        if self.up == self.down:
            return block
        buf = np.concatenate([self._hist, block.astype(np.float64)])
        end = self._base + len(buf)  # one past the last input index held
        stop = (end * self.up + self.down - 1) // self.down  # outputs whose newest input is held
        n = np.arange(self._next, stop, dtype=np.int64)
        pos = n * self.down
        newest = pos // self.up - self._base  # position in buf of each output's newest input
        k = self._taps.shape[1]
        if self.up == 1 and len(n):  # whole-number ratio (48 kHz): strided views, no copies
            first = int(newest[0]) - k + 1
            window = sliding_window_view(buf, k)[first :: self.down][: len(n)]
            out = window @ self._taps[0][::-1]
        else:
            window = buf[newest[:, None] - np.arange(k)[None, :]]
            out = np.einsum("ij,ij->i", window, self._taps[pos % self.up])
        keep = k - 1
        self._hist = buf[len(buf) - keep:] if keep else buf[:0]
        self._base = end - keep
        self._next = stop
        result: Samples = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        return result
