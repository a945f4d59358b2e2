"""Failing storage, measured against healthy storage in the same run.

- press → panic at an independent subscriber (in-process daemon, debounce 0, a real mosquitto)
  with healthy storage (the baseline), with a damaged outbox (its pages garbled under the
  running kiosk, the storage thread held so it stays damaged: every alarm goes out from memory)
  and with a full state partition (a 16 MB tmpfs filled byte-exact, no alarm reserve: needs
  root). Target: ratio ≤ 1.5 for p50 and p99.
- `safehouse run --sim` → READY=1 with a damaged 100 MB outbox (a garbage page in the middle:
  quarantined at start, salvaged after READY) against a healthy 100 MB one. Target ≤ 1.2x.
- the salvage of a 50 MB outbox whose first 8 KB are destroyed: bench/salvage_bench.py.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.kiosk import NO_CAPTURE, start_kiosk
from bench.press_latency import BUTTON, percentile
from bench.ready_time import ready_once
from safehouse.device.core.events import Event
from safehouse.device.core.inputs import ResolveRequested
from safehouse.device.runtime.daemon import Daemon
from safehouse.services.outbox import Outbox
from safehouse.services.outbox_mark import MARK_AHEAD
from safehouse.services.seq_lease import SeqLease
from safehouse.services.topics import Topics
from tests.rig.broker import Broker
from tests.rig.disk import TmpfsError, fill, mount_tmpfs, unmount
from tests.rig.subscriber import Subscriber

TOPIC = Topics("b", "BENCH").events


def _presses(daemon: Daemon, factory: Any, sub: Subscriber, n: int) -> list[float]:
    button = factory.pin(BUTTON)
    out = []
    for _ in range(n):
        sub.clear()
        t0 = time.monotonic()
        button.drive_low()
        [msg] = sub.wait_for(lambda m: b'"panic"' in m.payload, timeout=10)
        out.append(msg.received - t0)
        button.drive_high()
        daemon.loop.wait_until(lambda s, _n: not s.button.pressed, 2.0)
        daemon.loop.submit(ResolveRequested("false_alarm", "bench"), 2.0)
    return out


def _damage_running(daemon: Daemon) -> None:
    """Garble every page past the first few under the running kiosk; keep it damaged."""
    daemon.storage_watch.close()  # no repair during the measurement
    conn = daemon.outbox._conn  # the bench reaches in: everything into the file, then no cache
    assert conn is not None
    with daemon.outbox._lock:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        db = daemon.outbox.path
        with db.open("r+b") as f:
            f.seek(4096)  # every page but the first (the schema): the tables' pages are garbage now
            f.write(random.Random(1).randbytes(max(4096, db.stat().st_size - 4096)))
        conn.execute("PRAGMA shrink_memory")


def press_figures(broker: Broker, folder: Path, presses: int) -> dict[str, list[float] | None]:
    results: dict[str, list[float] | None] = {}
    for mode in ("healthy", "damaged", "full"):
        where = folder / mode
        extra = NO_CAPTURE + "[outbox]\nalarm_reserve_mb = 0\n"
        if mode == "full":
            try:
                mount_tmpfs(where / "state", 16)
            except TmpfsError:
                results[mode] = None
                continue
        sub = broker.subscriber([TOPIC])
        daemon, factory = start_kiosk(where, broker.url, extra)
        try:
            _presses(daemon, factory, sub, 3)  # warm up (and a few rows to damage)
            if mode == "damaged":
                _damage_running(daemon)
            elif mode == "full":
                fill(where / "state" / "filler")
                _presses(daemon, factory, sub, 5)  # whatever room SQLite's WAL still had is used up
            results[mode] = _presses(daemon, factory, sub, presses)
            if mode != "healthy":
                assert daemon.outbox.fault is not None, f"{mode}: the outbox was not faulted"
        finally:
            daemon.close()
            factory.close()
            sub.close()
            if mode == "full":
                unmount(where / "state")
    return results


def big_outbox(state: Path, megabytes: int) -> None:
    """A real outbox of about ``megabytes`` MB of undelivered events."""
    with Outbox(state):
        pass
    conn = sqlite3.connect(state / "outbox.db")
    rows = megabytes * 1024 * 1024 // 1000

    def payload(i: int) -> bytes:
        return Event(seq=i, event_id=f"big-{i}", device_id="READY", precinct="b", type="walk_in", code=None,
                     ts="2026-11-28T00:00:00.000Z", clock_synced=True, mono=1.0, boot_id="b", test=False,
                     data={"note": "x" * 600}).to_json().encode()
    with conn:
        conn.executemany("INSERT INTO messages(lane, topic, payload, event_id, seq, type, created) "
                         "VALUES (0, ?, ?, ?, ?, 'walk_in', 0)",
                         ((TOPIC, payload(i), f"big-{i}", i) for i in range(1, rows + 1)))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (rows,))
        conn.execute("UPDATE meta SET value = ? WHERE key = 'seq_mark'", (rows + MARK_AHEAD,))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    (state / "outbox.db-wal").unlink(missing_ok=True)
    SeqLease([state]).cover(rows)  # the lease as the kiosk keeps it: at or above every seq issued


def ready_figures(folder: Path, megabytes: int, samples: int) -> tuple[list[float], list[float]]:
    master = folder / "master"
    big_outbox(master, megabytes)
    healthy, damaged = [], []
    for _ in range(samples):
        for kind, out in (("healthy", healthy), ("damaged", damaged)):
            state = folder / kind
            shutil.rmtree(state, ignore_errors=True)
            state.mkdir()
            shutil.copy(master / "outbox.db", state / "outbox.db")
            shutil.copy(master / "seq.lease", state / "seq.lease")
            if kind == "damaged":
                db = state / "outbox.db"
                with db.open("r+b") as f:
                    f.seek(db.stat().st_size // 2 // 4096 * 4096)
                    f.write(random.Random(2).randbytes(4096))
            os.sync()
            out.append(ready_once(folder, state))
    return healthy, damaged


def run(presses: int = 100, megabytes: int = 100, samples: int = 3) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="sh-bench-storage-", dir="/tmp"))
    (folder / "broker").mkdir()
    broker = Broker(folder / "broker", mosquitto=shutil.which("mosquitto") or "/usr/sbin/mosquitto")
    broker.start()
    try:
        press = press_figures(broker, folder, presses)
    finally:
        broker.stop()
    try:
        healthy_ready, damaged_ready = ready_figures(folder, megabytes, samples)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    base = press["healthy"]
    assert base is not None
    rows: list[dict[str, Any]] = []
    for mode in ("damaged", "full"):
        samples_ms = press[mode]
        for name, q in (("p50", 0.5), ("p99", 0.99)):
            rows.append({"figure": f"press→panic at a subscriber {name}, {mode} storage", "unit": "ms",
                         "value": float("nan") if samples_ms is None else percentile(samples_ms, q) * 1000,
                         "baseline": percentile(base, q) * 1000, "target": percentile(base, q) * 1500,
                         "n": len(base),
                         "note": "baseline: healthy storage, same run; target 1.5x it"
                                 + ("" if samples_ms is not None or mode != "full" else
                                    "; full disk needs root for the tmpfs")})
    rows.append({"figure": f"`run --sim` → READY=1, damaged {megabytes} MB outbox (median)", "unit": "s",
                 "value": statistics.median(damaged_ready), "baseline": statistics.median(healthy_ready),
                 "target": statistics.median(healthy_ready) * 1.2, "n": samples,
                 "note": "baseline: the same outbox undamaged; target 1.2x it; the salvage runs after READY"})
    from bench import salvage_bench  # it builds its outbox with big_outbox() from here

    return rows + salvage_bench.run(min(50, megabytes), max(1, min(3, samples)))
