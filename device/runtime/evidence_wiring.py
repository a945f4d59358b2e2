"""Build the evidence capture from config: camera, microphone, evidence store, capture service.

Nothing here may stop the kiosk from starting: a missing camera or microphone is logged and
reported on the next alarm's ``evidence`` event (and raised once as a fault), while the
button, the light box and the uplink work as always.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from safehouse.services.capture import CaptureService, CaptureSettings
from safehouse.services.evidence import EvidenceStore

if TYPE_CHECKING:
    from safehouse.device.runtime.daemon import Daemon

_LOG = logging.getLogger(__name__)
MB = 1024 * 1024
SIM_AUDIO_SECONDS = 120.0  # the sim microphone's signal file; the stream rewinds before its end


def evidence_store(daemon: Daemon) -> EvidenceStore:
    ev = daemon.config.evidence
    return EvidenceStore(daemon.config.device.state_dir / "evidence", quota_bytes=int(ev.quota_mb * MB),
                         hard_limit_bytes=int(ev.hard_limit_mb * MB), retention_days=ev.retention_days,
                         clock=daemon.clock.wall, has_room=daemon.reserve.floor_ok)


def _camera(daemon: Daemon) -> Any | None:
    cfg = daemon.config
    if not cfg.camera.enabled:
        return None
    from safehouse.drivers.camera import make_camera

    size = {"width": cfg.camera.width, "height": cfg.camera.height, "quality": cfg.camera.quality}
    if cfg.device.hardware == "sim":
        return make_camera("sim", device_id=cfg.device.id, **size)
    return make_camera("pi", timeout=cfg.camera.timeout, **size)  # its waits fit inside this


def _microphone(daemon: Daemon) -> Any | None:
    cfg = daemon.config
    mic = cfg.microphone
    if not mic.enabled:
        return None
    device = mic.device or None
    if cfg.device.hardware == "sim" and device is None:
        from safehouse.drivers.sim_audio import sim_microphone

        try:
            return sim_microphone(cfg.device.state_dir, pre_roll=mic.pre_roll, seconds=SIM_AUDIO_SECONDS)
        except Exception as exc:
            _LOG.error("simulated microphone unavailable: %s", exc)
            return None
    from safehouse.drivers.microphone import SoundDeviceMicrophone

    return SoundDeviceMicrophone(pre_roll=mic.pre_roll, device=device)


def build_capture(daemon: Daemon) -> CaptureService:
    cfg = daemon.config
    settings = CaptureSettings(offsets=cfg.camera.offsets, camera_timeout=cfg.camera.timeout,
                               post_roll=cfg.microphone.post_roll)

    def wake() -> None:
        if daemon.uplink is not None:
            daemon.uplink.wake()

    return CaptureService(settings, camera=_camera(daemon), microphone=_microphone(daemon),
                          store=daemon.evidence, queue=daemon.outbox, topic=daemon.topics.evidence,
                          put=daemon.loop.put, wake=wake)
