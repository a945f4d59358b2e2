"""The evidence parts built from config: camera, microphone, evidence store, capture service.

Nothing here may stop the kiosk from starting: a missing camera or microphone is logged and
reported on the next alarm's ``evidence`` event (and raised once as a fault), while the
button, the light box and the uplink work as always. A part switched off is simply absent
(``None``), which the capture service and the self-test read as "disabled in config".
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from safehouse.device.core.clock import Clock
from safehouse.device.core.inputs import Input
from safehouse.device.runtime.config import Config
from safehouse.services.capture import CaptureService, CaptureSettings
from safehouse.services.evidence import EvidenceStore
from safehouse.services.outbox import Outbox

_LOG = logging.getLogger(__name__)
MB = 1024 * 1024
SIM_AUDIO_SECONDS = 120.0  # the sim microphone's signal file; the stream rewinds before its end


def evidence_store(config: Config, clock: Clock, *, has_room: Callable[[int], bool]) -> EvidenceStore:
    """``has_room``: the alarm reserve's floor, which evidence never eats into."""
    ev = config.evidence
    return EvidenceStore(config.device.state_dir / "evidence", quota_bytes=int(ev.quota_mb * MB),
                         hard_limit_bytes=int(ev.hard_limit_mb * MB), retention_days=ev.retention_days,
                         clock=clock.wall, has_room=has_room)


def camera(config: Config) -> Any | None:
    if not config.camera.enabled:
        return None
    from safehouse.drivers.camera import make_camera

    size = {"width": config.camera.width, "height": config.camera.height, "quality": config.camera.quality}
    if config.device.hardware == "sim":
        return make_camera("sim", device_id=config.device.id, **size)
    return make_camera("pi", timeout=config.camera.timeout, **size)  # its waits fit inside this


def microphone(config: Config) -> Any | None:
    mic = config.microphone
    if not mic.enabled:
        return None
    device = mic.device or None
    if config.device.hardware == "sim" and device is None:
        from safehouse.drivers.sim_audio import sim_microphone

        try:
            return sim_microphone(config.device.state_dir, pre_roll=mic.pre_roll, seconds=SIM_AUDIO_SECONDS)
        except Exception as exc:
            _LOG.error("simulated microphone unavailable: %s", exc)
            return None
    from safehouse.drivers.microphone import DAEMON_BLOCK, SoundDeviceMicrophone

    return SoundDeviceMicrophone(pre_roll=mic.pre_roll, device=device, blocksize=DAEMON_BLOCK)


def capture_service(config: Config, store: EvidenceStore, outbox: Outbox, *, topic: Callable[[str, str], str],
                    put: Callable[[Input], None], wake: Callable[[], None]) -> CaptureService:
    """Snapshots and audio for each alarm, queued on the outbox; ``wake`` nudges the uplink."""
    settings = CaptureSettings(offsets=config.camera.offsets, camera_timeout=config.camera.timeout,
                               post_roll=config.microphone.post_roll)
    return CaptureService(settings, camera=camera(config), microphone=microphone(config),
                          store=store, queue=outbox, topic=topic, put=put, wake=wake)
