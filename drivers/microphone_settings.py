"""[microphone]: the alarm's audio clip.

Apart from ``microphone.py`` so that loading the config does not import numpy: with the
microphone off, the daemon never imports it at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from safehouse.device.core.settings import in_range, setting


@dataclass(frozen=True)
class MicrophoneSettings:
    """[microphone]: whether an alarm records a clip, and how much before and after the press."""

    enabled: bool = setting(True, "record an audio clip when an alarm starts")
    pre_roll: float = setting(10.0, "seconds kept from before the press (0 = microphone closed "
                              "until an alarm)", in_range(0.0, 60.0))
    post_roll: float = setting(20.0, "seconds recorded after the press", in_range(1.0, 300.0))
    device: str = setting("", "sounddevice input device name, or its number ('' = the default input)")
