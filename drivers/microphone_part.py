"""The microphone as a part: its [microphone] settings and the factory that opens the sim or a real input.

The driver (``microphone.py``, whose ring buffer uses numpy, and ``sim_audio.py``) is imported only
when the part is built: loading the config does not import numpy, and with the microphone off
the daemon never imports it at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from safehouse.device.core.settings import in_range, setting

if TYPE_CHECKING:
    from safehouse.drivers.microphone import SoundDeviceMicrophone

_LOG = logging.getLogger(__name__)
SIM_AUDIO_SECONDS = 120.0  # the sim microphone's signal file; the stream rewinds before its end


@dataclass(frozen=True)
class MicrophoneSettings:
    """[microphone]: whether an alarm records a clip, and how much before and after the press."""

    enabled: bool = setting(True, "record an audio clip when an alarm starts")
    pre_roll: float = setting(10.0, "seconds kept from before the press (0 = microphone closed "
                              "until an alarm)", in_range(0.0, 60.0))
    post_roll: float = setting(20.0, "seconds recorded after the press", in_range(1.0, 300.0))
    device: str = setting("", "sounddevice input device name, or its number ('' = the default input)")


def build(settings: MicrophoneSettings, *, simulated: bool, state_dir: Path) -> SoundDeviceMicrophone | None:
    """The microphone the config asks for, not yet started; None when off or unavailable.

    Simulated with no ``microphone.device``, the kiosk hears a chirp file kept in ``state_dir``
    through ALSA's file plugin; a simulated microphone that cannot be prepared is logged and
    left out (the alarm goes without a clip, the kiosk starts all the same). Otherwise the
    configured (or default) input, read in the daemon's quarter-second blocks.
    """
    if not settings.enabled:
        return None
    device = settings.device or None
    if simulated and device is None:
        from safehouse.drivers.sim_audio import sim_microphone

        try:
            return sim_microphone(state_dir, pre_roll=settings.pre_roll, seconds=SIM_AUDIO_SECONDS)
        except Exception as exc:
            _LOG.error("simulated microphone unavailable: %s", exc)
            return None
    from safehouse.drivers.microphone import DAEMON_BLOCK, SoundDeviceMicrophone

    return SoundDeviceMicrophone(pre_roll=settings.pre_roll, device=device, blocksize=DAEMON_BLOCK)
