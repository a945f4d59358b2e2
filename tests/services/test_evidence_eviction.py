"""Evidence eviction and purge on real files: the quota, the hard limit and retention spare what
has not reached the precinct; a symlink is never followed; a broken "delivered?" keeps evidence."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from safehouse.device.core.errors import SafehouseError
from safehouse.services.evidence import EvictionReport, EvidenceError
from tests.rig.clock import T0, FakeClock
from tests.rig.evidence import BIG, DAY, fill, ids, make_store, starts_with_d

# -- eviction ----------------------------------------------------------------------------


def test_quota_evicts_the_oldest_delivered_and_spares_undelivered_even_older(tmp_path: Path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock, quota=300, hard=1000)
    fill(store, clock, ["U1", "D2", "D3", "U4", "D5"])
    assert store.total_bytes() == 500
    report = store.enforce(starts_with_d)
    assert report == EvictionReport(["D2", "D3"], [], 500, 300)
    assert ids(store) == ["U1", "U4", "D5"]
    assert [s.delivered for s in store.list(starts_with_d)] == [False, False, True]


def test_only_past_the_hard_limit_is_undelivered_evidence_evicted_oldest_first(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    fill(make_store(tmp_path, clock), clock, ["U1", "D2", "D3", "U4", "D5"])
    report = make_store(tmp_path, clock, quota=100, hard=250).enforce(starts_with_d)
    assert report == EvictionReport(["D2", "D3", "D5"], [], 500, 200)  # over quota, under the hard limit
    with caplog.at_level(logging.CRITICAL, logger="safehouse.services.evidence"):
        report = make_store(tmp_path, clock, quota=100, hard=150).enforce(starts_with_d)
    assert report == EvictionReport([], ["U1"], 200, 100)
    assert ids(make_store(tmp_path, clock)) == ["U4"]
    assert [r.levelno for r in caplog.records if "U1" in r.getMessage()] == [logging.CRITICAL]


def test_retention_deletes_old_delivered_and_keeps_old_undelivered(tmp_path: Path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock, retention_days=1)
    fill(store, clock, ["D-old", "U-old"])
    clock.t = T0 + 1.5 * DAY
    store.put("D-new", "snap.jpg", b"x" * 100)
    clock.t = T0 + 2 * DAY
    report = store.enforce(starts_with_d)
    assert report == EvictionReport(["D-old"], [], 300, 200)
    assert ids(store) == ["U-old", "D-new"]


def test_a_failing_delivered_predicate_keeps_the_evidence(tmp_path: Path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock, quota=0, hard=BIG, retention_days=0)
    fill(store, clock, ["D1"])
    clock.t += DAY

    def broken(_event: str) -> bool:
        raise SafehouseError("outbox unreadable")

    assert store.enforce(broken).evicted == []
    assert [s.delivered for s in store.list(broken)] == [None]


def test_a_symlink_in_the_store_is_never_followed(tmp_path: Path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep")
    store.put("EV-1", "a.jpg", b"a" * 100)
    (store.root / "EV-1" / "dir-link").symlink_to(outside)
    (store.root / "EV-1" / "file-link").symlink_to(outside / "precious")
    (store.root / "EV-2").symlink_to(outside)
    assert ids(store) == ["EV-1"] and store.total_bytes() == 100
    with pytest.raises(EvidenceError, match="EV-2"):
        store.put("EV-2", "b.jpg", b"b")
    clock.t += DAY
    assert store.purge(0, lambda _event: True).evicted == ["EV-1"]
    assert sorted(p.name for p in outside.iterdir()) == ["precious"]
    assert (outside / "precious").read_text() == "keep"
    assert (store.root / "EV-2").is_symlink()


# -- purge -------------------------------------------------------------------------------


def test_purge_skips_undelivered_unless_asked(tmp_path: Path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    fill(store, clock, ["D-old", "U-old"])
    clock.t = T0 + 9.5 * DAY
    store.put("D-new", "snap.jpg", b"x" * 100)
    store.put("U-new", "snap.jpg", b"x" * 100)
    clock.t = T0 + 10 * DAY
    assert store.purge(7, starts_with_d) == EvictionReport(["D-old"], [], 400, 300)
    report = store.purge(7, starts_with_d, include_undelivered=True)
    assert report == EvictionReport([], ["U-old"], 300, 200)
    assert ids(store) == ["D-new", "U-new"]
    with pytest.raises(ValueError, match="older_than_days"):
        store.purge(-1, starts_with_d)


def test_purge_and_enforce_on_a_store_never_written_create_nothing(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock())
    assert store.purge(0, starts_with_d) == store.enforce(starts_with_d) == EvictionReport([], [], 0, 0)
    assert store.list() == [] and not store.root.exists()
