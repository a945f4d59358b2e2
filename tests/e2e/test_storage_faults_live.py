"""A full or read-only state partition: the kiosk is up, presses reach the precinct, and when
storage returns the events go to disk without being sent twice under different ids.

Real parts: a size-limited tmpfs as state_dir (tests/rig/disk.py, root: CI is), filled byte-exact
or remounted read-only, the real daemon and CLI, a real mosquitto and an independent subscriber.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig.broker import Broker
from tests.rig.daemon import DaemonProcess
from tests.rig.disk import fill, remount, tmpfs
from tests.rig.kiosk_config import write_config
from tests.rig.subscriber import Subscriber

TOPIC = "safehouse/v1/test/SH-TEST-0001/events"


@pytest.fixture
def tiny_disk(short_dir: Path) -> Iterator[Path]:
    with tmpfs(short_dir / "state", 2) as state:
        yield state


def kiosk(short_dir: Path, broker: Broker, extra: str = "") -> DaemonProcess:
    config = write_config(short_dir, f'[broker]\nurl = "{broker.url}"\n'
                                     f'[outbox]\nalarm_reserve_mb = 0\n{extra}')
    return DaemonProcess(config, short_dir / "ctl.sock")


def panics(sub: Subscriber, count: int, timeout: float = 15.0) -> list[dict[str, object]]:
    return [m.json() for m in sub.wait_for(lambda m: m.json().get("type") == "panic", timeout=timeout,
                                           count=count)]


def one_id_per_seq(sub: Subscriber) -> dict[int, str]:
    by_seq: dict[int, str] = {}
    for m in sub.wait_for(lambda m: True, timeout=1):
        event = m.json()
        assert by_seq.setdefault(int(event["seq"]), event["event_id"]) == event["event_id"], event
    return by_seq


def press(proc: DaemonProcess) -> dict[str, object]:
    answer = json.loads(proc.ok("press", "--json"))
    proc.ok("resolve", "false_alarm")
    return dict(answer)


def pending_once_drained(proc: DaemonProcess, timeout: float = 15.0) -> object:
    """`status`'s pending_events once the kiosk has sent what it held, or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while proc.status()["pending_events"] and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc.status()["pending_events"]


def test_full_before_start_the_kiosk_runs_from_memory_and_moves_to_disk_when_room_returns(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    fill(tiny_disk / "runaway.log")
    sub = broker.subscriber([TOPIC])
    tele = broker.subscriber(["safehouse/v1/test/SH-TEST-0001/telemetry"])
    proc = kiosk(short_dir, broker, "[telemetry]\ninterval = 1.0\n").start()
    try:
        [reading] = tele.wait_for(lambda m: True, timeout=10)  # sent from memory: it names the fault
        assert "full" in str(reading.json()["outbox"]["storage_fault"])
        status = proc.status()
        assert "full" in str(status["storage"]["fault"]) or "unavailable" in str(status["storage"]["fault"])
        text = proc.ok("status")
        assert "STORAGE FAULT" in text and "RUNNING FROM MEMORY" in text
        selftest = json.loads(proc.cli("selftest", "--json").stdout)
        [storage] = [c for c in selftest["checks"] if c["name"] == "storage"]
        assert not storage["ok"] and "running from memory" in storage["detail"]
        answer = press(proc)
        assert answer["record"] in ("delivered", "sent_from_memory"), answer
        assert "NOT on disk" in str(answer["why"])
        [panic] = panics(sub, 1)
        assert panic["event_id"] == answer["alarm"]["event_id"]  # type: ignore[index]
        (tiny_disk / "runaway.log").unlink()
        deadline = time.monotonic() + 15
        while "outbox" in str(proc.status()["storage"]["fault"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        # the outbox is back on disk; the day's counts stay in memory (and say so) until a restart
        assert "outbox" not in str(proc.status()["storage"]["fault"])
        assert "stats" in str(proc.status()["storage"]["fault"])
        stored = {e["event_id"]: e["seq"] for e in proc.events()}
        assert stored[panic["event_id"]] == panic["seq"]  # on disk now, same id and seq
        assert press(proc)["record"] == "durable"
        panics(sub, 2)
        one_id_per_seq(sub)
        assert proc.stop() == 0
    finally:
        proc.kill()
        sub.close()
        tele.close()


def test_filled_while_running_a_press_is_delivered_and_written_once_room_returns(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    sub = broker.subscriber([TOPIC])
    proc = kiosk(short_dir, broker).start()
    try:
        assert press(proc)["record"] == "durable"
        fill(tiny_disk / "runaway.log")
        answers = [press(proc) for _ in range(3)]  # an SQLite WAL may still take a few on a full disk
        got = panics(sub, 4)
        assert {a["alarm"]["event_id"] for a in answers} <= {p["event_id"] for p in got}  # type: ignore[index]
        (tiny_disk / "runaway.log").unlink()
        assert pending_once_drained(proc) == 0
        stored = {e["event_id"]: e["seq"] for e in proc.events()}
        assert all(stored[p["event_id"]] == p["seq"] for p in got)
        one_id_per_seq(sub)
        assert proc.stop() == 0
        assert "stopped cleanly" in proc.log.read_text()
    finally:
        proc.kill()
        sub.close()


def test_a_read_only_state_dir_starts_and_delivers_presses(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    sub = broker.subscriber([TOPIC])
    proc = kiosk(short_dir, broker).start()
    press(proc)
    assert proc.stop() == 0
    remount(tiny_disk, read_only=True)
    try:
        proc.start()
        assert proc.status()["storage"]["fault"] is not None
        before = max(int(p["seq"]) for p in panics(sub, 1))
        answer = press(proc)
        assert answer["record"] in ("delivered", "sent_from_memory")
        [_, second] = panics(sub, 2)
        assert int(second["seq"]) > before
        remount(tiny_disk, read_only=False)
        assert pending_once_drained(proc) == 0
        assert "outbox" not in str(proc.status()["storage"]["fault"])
        one_id_per_seq(sub)
    finally:
        remount(tiny_disk, read_only=False)
        proc.kill()
        sub.close()


def test_kill_9_at_seeded_points_while_storage_fails_loses_no_accepted_alarm(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    """Every press answered while the disk is full reaches the precinct, whatever the kill point."""
    rng = random.Random(11)
    sub = broker.subscriber([TOPIC])
    proc = kiosk(short_dir, broker).start()
    accepted: list[str] = []
    try:
        fill(tiny_disk / "runaway.log")
        for _round in range(3):
            for _ in range(rng.randint(1, 2)):
                answer = json.loads(proc.ok("press", "--json"))
                accepted.append(answer["alarm"]["event_id"])
                time.sleep(rng.uniform(0.0, 0.4))
                proc.cli("resolve", "false_alarm")
            proc.kill()
            proc.start()
        got = {p["event_id"] for p in panics(sub, len(accepted), timeout=20)}
        assert set(accepted) <= got
        one_id_per_seq(sub)
    finally:
        (tiny_disk / "runaway.log").unlink(missing_ok=True)
        proc.kill()
        sub.close()


def test_stop_waits_for_an_unwritten_alarm_and_never_says_stopped_cleanly_without_it(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    broker.stop()  # the precinct unreachable and the disk full: the alarm and its resolve only in memory
    fill(tiny_disk / "runaway.log")
    proc = kiosk(short_dir, broker).start()
    try:
        answer = press(proc)
        assert answer["record"] == "memory_only" and "lost if power fails" in str(answer["why"])
        started = time.monotonic()
        assert proc.stop(timeout=15) != 0  # an accepted alarm is lost: the stop failed
        waited = time.monotonic() - started
        log = proc.log.read_text()
        assert "stopped cleanly" not in log
        assert "stopped WITHOUT 2 accepted event(s)" in log and str(answer["alarm"]["event_id"]) in log  # type: ignore[index]
        assert 4.0 <= waited < 12.0  # it waited (bounded) for the broker
    finally:
        proc.kill()


def test_a_lost_wal_on_a_read_only_card_starts_from_memory_and_is_quarantined_once_writable(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    sub = broker.subscriber([TOPIC])
    proc = kiosk(short_dir, broker).start()
    try:
        press(proc)
        proc.kill()
        (tiny_disk / "outbox.db-wal").unlink()
        remount(tiny_disk, read_only=True)
        proc.start()  # found damaged, cannot be moved aside: runs from memory
        assert "damaged" in str(proc.status()["storage"]["fault"])
        before = max(int(p["seq"]) for p in panics(sub, 1))
        later = press(proc)["alarm"]["event_id"]  # type: ignore[index]
        [new] = sub.wait_for(lambda m: m.json().get("event_id") == later, timeout=10)
        assert int(new.json()["seq"]) > before
        remount(tiny_disk, read_only=False)
        [report] = sub.wait_for(lambda m: m.json().get("type") == "storage_damaged", timeout=15)
        assert "wal" in report.json()["data"]["reason"].lower()
        one_id_per_seq(sub)
    finally:
        remount(tiny_disk, read_only=False)
        proc.kill()
        sub.close()


def test_events_queued_before_the_card_went_read_only_still_go_first_and_in_order(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    broker.stop()  # the precinct away: the first run's events stay queued on the card
    proc = kiosk(short_dir, broker).start()
    try:
        queued = press(proc)
        proc.kill()  # the power cut leaves outbox.db with its -wal and -shm
        remount(tiny_disk, read_only=True)
        broker.start()
        sub = broker.subscriber([TOPIC])
        proc.start()
        later = press(proc)  # from memory: the outbox cannot be written
        assert later["record"] in ("delivered", "sent_from_memory"), later
        got = panics(sub, 2)
        assert [p["event_id"] for p in got] == [queued["alarm"]["event_id"], later["alarm"]["event_id"]]  # type: ignore[index]
        seqs = [int(m.json()["seq"]) for m in sub.wait_for(lambda m: True, timeout=1)]
        assert seqs == sorted(seqs), seqs  # the queued events first, then the alarm from memory
        sub.close()
    finally:
        remount(tiny_disk, read_only=False)
        proc.kill()


def test_queued_events_on_a_read_only_card_go_out_when_the_broker_comes_back_later(
        short_dir: Path, tiny_disk: Path, broker: Broker) -> None:
    """The storage thread's first retry ran before the broker was back: its failed read-write
    open left the read-only view blind to the rows in the -wal, and the queued panic never went
    out (1 run in 4 of the test above; always when the precinct was away a little longer)."""
    broker.stop()
    proc = kiosk(short_dir, broker).start()
    try:
        queued = press(proc)
        proc.kill()  # the power cut leaves outbox.db with its -wal and -shm
        remount(tiny_disk, read_only=True)
        proc.start()
        time.sleep(1.0)  # the precinct still away while the storage thread makes its first retry
        broker.start()
        sub = broker.subscriber([TOPIC])
        [got] = panics(sub, 1)
        assert got["event_id"] == queued["alarm"]["event_id"]  # type: ignore[index]
        sub.close()
    finally:
        remount(tiny_disk, read_only=False)
        proc.kill()


@pytest.mark.parametrize("card", ["still_read_only", "writable_again"])
def test_an_alarm_only_in_memory_survives_a_kill_9_of_the_daemon(
        short_dir: Path, tiny_disk: Path, broker: Broker, card: str) -> None:
    """Found by make chaos seed 9 (2 alarms lost): a read-only card, the broker unreachable and the
    daemon killed: the alarm was nowhere. The runtime directory keeps it until it is delivered."""
    proc = kiosk(short_dir, broker).start()
    try:
        assert press(proc)["record"] == "durable"
        broker.stop()
        proc.kill()
        remount(tiny_disk, read_only=True)
        proc.start()
        answer = press(proc)
        assert answer["record"] == "memory_only", answer
        kept = list(short_dir.glob("unsent-alarm-*.json"))
        assert len(kept) == 1 and oct(kept[0].stat().st_mode & 0o777) == "0o600"
        proc.kill()
        if card == "writable_again":
            remount(tiny_disk, read_only=False)
        broker.start()
        sub = broker.subscriber([TOPIC])
        proc.start()
        later = press(proc)["alarm"]["event_id"]  # type: ignore[index]
        if later == answer["alarm"]["event_id"]:  # type: ignore[index]
            later = press(proc)["alarm"]["event_id"]  # type: ignore[index]  # on disk: it was resumed
        [panic] = sub.wait_for(lambda m: m.json().get("event_id") == answer["alarm"]["event_id"],  # type: ignore[index]
                               timeout=15)
        [new] = sub.wait_for(lambda m: m.json().get("event_id") == later, timeout=15)
        assert int(new.json()["seq"]) > int(panic.json()["seq"])
        seqs = [int(m.json()["seq"]) for m in sub.wait_for(lambda m: True, timeout=1)]
        assert seqs == sorted(seqs), seqs  # the kept alarm goes out in seq order
        if card == "writable_again":  # on disk now, with its own seq
            stored = {e["event_id"]: e["seq"] for e in proc.events()}
            assert stored[panic.json()["event_id"]] == panic.json()["seq"]
        deadline = time.monotonic() + 10
        while list(short_dir.glob("unsent-alarm-*.json")) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not list(short_dir.glob("unsent-alarm-*.json"))  # acknowledged: no longer kept
        one_id_per_seq(sub)
        sub.close()
    finally:
        remount(tiny_disk, read_only=False)
        proc.kill()
