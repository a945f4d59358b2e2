"""The microphone's self-test line tells the technician how much audio arrived, in seconds.

Found by differential testing against the code before issue 13 (commit 1d4116e): once the sound
analysis moved to a child process the check measured raw PCM bytes (2 per 16-bit sample), so
`safehouse selftest` on the sim kiosk printed "4.5 s heard" where it had printed "2.2 s heard".
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Mapping
from typing import Any

from safehouse.device.runtime import checks
from safehouse.drivers.ring_buffer import Clip

RATE = 16_000


def tone_clip(seconds: float, hz: float = 440.0) -> Clip:
    frames = int(seconds * RATE)
    pcm = b"".join(int(8000 * math.sin(2 * math.pi * hz * i / RATE)).to_bytes(2, "little", signed=True)
                   for i in range(frames))
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return Clip(wav=out.getvalue(), frames=frames, rate=RATE, pre_roll_frames=0, first_frame_index=0)


class OneSecondMicrophone:
    """A microphone that hears one second of a 440 Hz tone whatever it is asked for."""

    def record(self, seconds: float) -> Clip:
        return tone_clip(1.0)


class SilentBuzzer:
    def play(self, sound: str) -> None:
        raise AssertionError("no tonal buzzer: nothing is played")


def test_the_microphone_check_reports_seconds_of_audio_not_bytes() -> None:
    def parts() -> Mapping[str, Any]:
        return {"microphone": OneSecondMicrophone()}

    ok, detail = checks.microphone(parts, enabled=True, buzzer=SilentBuzzer(), tone_hz=None)
    assert ok, detail
    assert detail.startswith("1.0 s heard, "), detail
    assert "loudest 440 Hz" in detail, detail
