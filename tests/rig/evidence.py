"""An evidence store on a fake clock, and a way to fill it: shared by the store's tests
(tests/services/test_evidence_store.py, test_evidence_eviction.py).

Event ids starting with "D" stand for evidence the precinct has received (``starts_with_d`` is
the "delivered?" question the daemon answers from its outbox), "U" for evidence it has not.
"""

from __future__ import annotations

from pathlib import Path

from safehouse.services.evidence import EvidenceStore
from tests.rig.clock import T0, FakeClock

DAY = 86400.0
BIG = 10**9


def make_store(tmp_path: Path, clock: FakeClock, *, quota: int = BIG, hard: int = BIG,
               retention_days: float = 30) -> EvidenceStore:
    return EvidenceStore(tmp_path / "evidence", quota_bytes=quota, hard_limit_bytes=hard,
                         retention_days=retention_days, clock=clock)


def fill(store: EvidenceStore, clock: FakeClock, ids: list[str], *, step: float = 60.0) -> None:
    """One 100-byte snapshot per event, each ``step`` seconds after the previous one."""
    for i, event_id in enumerate(ids):
        clock.t = T0 + i * step
        store.put(event_id, "snap.jpg", b"x" * 100)


def ids(store: EvidenceStore) -> list[str]:
    return [s.event_id for s in store.list()]


def starts_with_d(event_id: str) -> bool:
    """Delivered? Yes for the "D..." events."""
    return event_id.startswith("D")
