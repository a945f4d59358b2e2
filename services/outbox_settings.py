"""[outbox]: how much the outbox keeps while the precinct is out of reach, and for how long."""

from __future__ import annotations

from dataclasses import dataclass

from safehouse.device.core.settings import in_range, setting


@dataclass(frozen=True)
class OutboxSettings:
    """[outbox]: caps and retention of the durable outbox, and the alarm reserve."""

    events_cap: int = setting(100_000, "pending events before non-alarm events are refused (a fault "
                              "is raised at 90 %); alarms are always kept", in_range(100, 10_000_000))
    telemetry_keep: int = setting(1000, "newest pending telemetry messages kept while offline",
                                  in_range(1, 1_000_000))
    delivered_retention: float = setting(72.0, "hours delivered rows are kept for audit",
                                         in_range(0.0, 24 * 365))
    alarm_reserve_mb: float = setting(4.0, "space set aside in state_dir, given back to alarm events "
                                      "the moment the disk is full (0 = none)", in_range(0.0, 1024.0))
