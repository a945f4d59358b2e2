"""The evidence parts built from config: the capture parts (``parts.CAPTURE``), the store, the service.

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
from safehouse.device.runtime.parts import CAPTURE
from safehouse.services.capture import CaptureService, CaptureSettings
from safehouse.services.evidence import EvidenceStore
from safehouse.services.outbox import Outbox

_LOG = logging.getLogger(__name__)
MB = 1024 * 1024


def evidence_store(config: Config, clock: Clock, *, has_room: Callable[[int], bool]) -> EvidenceStore:
    """``has_room``: the alarm reserve's floor, which evidence never eats into."""
    ev = config.evidence
    return EvidenceStore(config.device.state_dir / "evidence", quota_bytes=int(ev.quota_mb * MB),
                         hard_limit_bytes=int(ev.hard_limit_mb * MB), retention_days=ev.retention_days,
                         clock=clock.wall, has_room=has_room)


def capture_parts(config: Config) -> dict[str, Any]:
    """Every registered capture part (``parts.CAPTURE``) built from config: name -> device or None.

    Nothing is started here. If a later part's build raises, the ones already built are closed
    before the error propagates, as ``Hardware`` does.
    """
    built: dict[str, Any] = {}
    try:
        for part in CAPTURE:
            built[part.name] = part.build(config)
    except BaseException:
        for device in reversed([d for d in built.values() if d is not None]):
            try:
                device.close()
            except Exception:
                _LOG.exception("closing %r failed", device)
        raise
    return built


def capture_service(config: Config, store: EvidenceStore, outbox: Outbox, *, topic: Callable[[str, str], str],
                    put: Callable[[Input], None], wake: Callable[[], None]) -> CaptureService:
    """Snapshots and audio for each alarm, queued on the outbox; ``wake`` nudges the uplink."""
    settings = CaptureSettings(offsets=config.camera.offsets, camera_timeout=config.camera.timeout,
                               post_roll=config.microphone.post_roll)
    return CaptureService(settings, **capture_parts(config), store=store, queue=outbox, topic=topic,
                          put=put, wake=wake)
