"""`make fleet`: the city's 2,100 kiosks against one local mosquitto, and what that costs.

Usage: python -m bench.fleet [--kiosks N] [--per-proc K] [--telemetry-interval S] [--seed N]

Every kiosk is a real Outbox + Uplink (bench/fleet_worker.py) with its own client id, birth
message and last will, spread over processes of at most ``--per-proc`` kiosks: paho's
network loop uses select(), which cannot watch a descriptor numbered 1024 or more, and each
kiosk holds about six
(socket, wake-up pair, SQLite file, WAL, shared memory). The run measures, in order:
1. fleet connect time: from "go" until the precinct has seen every kiosk's birth;
2. an alarm storm (100 panics from random kiosks in 10 s) with the fleet connected but quiet;
3. the same storm (same kiosks, same offsets) while the fleet sends telemetry at the
   configured interval, and the broker's message rate meanwhile ($SYS, 1 s updates);
4. last wills: the 100 kiosks of one process are frozen at once (SIGSTOP: from the broker's
   side a power cut — no FIN, no more PINGREQ) and the time until every will is published.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.fleet_observer import Observer
from bench.fleet_worker import PRECINCT, serve
from bench.press_latency import percentile
from safehouse.services.mqtt_settings import BrokerSettings
from safehouse.services.telemetry import TelemetrySettings
from tests.rig.broker import Broker

OUT = Path(__file__).resolve().parent / "out"
DEFAULT_INTERVAL = TelemetrySettings().interval
DEFAULT_KEEPALIVE = BrokerSettings().keepalive


class Fleet:
    """The worker processes; the last one holds the kiosks whose power is cut."""

    def __init__(self, folder: Path, url: str, kiosks: int, per_proc: int, doomed: int,
                 keepalive: int) -> None:
        ids = [f"SH-FLEET-{n:04d}" for n in range(kiosks)]
        rest, self.doomed_ids = ids[:kiosks - doomed], ids[kiosks - doomed:]
        groups = [rest[i:i + per_proc] for i in range(0, len(rest), per_proc)] + [self.doomed_ids]
        ctx = mp.get_context("spawn")  # no fork of a process that runs threads
        self.where: dict[str, tuple[int, int]] = {}
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for g, group in enumerate(groups):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=serve, args=(child, group, str(folder), url, keepalive),
                               name=f"fleet-{g}", daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
            self.where.update({kid: (g, i) for i, kid in enumerate(group)})
        for pipe in self.pipes:
            _expect(pipe, "ready", 600)

    def all(self, *msg: Any) -> None:
        for pipe in self.pipes:
            pipe.send(msg)

    def alarm(self, kiosk: str, event_id: str) -> None:
        g, i = self.where[kiosk]
        self.pipes[g].send(("alarm", i, event_id))

    def sent_times(self) -> dict[str, float]:
        """When each storm alarm was queued (storms use the kiosks outside the doomed process)."""
        times: dict[str, float] = {}
        for pipe in self.pipes[:-1]:
            pipe.send(("times",))
            times.update(_expect(pipe, "times", 30)[1])
        return times

    frozen = False

    def freeze_doomed(self) -> float:
        self.frozen = True
        os.kill(self.procs[-1].pid, signal.SIGSTOP)  # by PID: a process this run started
        return time.monotonic()

    def close(self) -> None:
        for g, proc in enumerate(self.procs):
            if g == len(self.procs) - 1 and self.frozen:
                os.kill(proc.pid, signal.SIGKILL)
                continue
            if proc.is_alive():
                try:
                    self.pipes[g].send(("stop",))
                    _expect(self.pipes[g], "stopped", 60)
                except (OSError, EOFError, TimeoutError):
                    pass
        for proc in self.procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()


def _expect(pipe: Connection, what: str, timeout: float) -> tuple[Any, ...]:
    if not pipe.poll(timeout):
        raise TimeoutError(f"a fleet worker did not answer {what!r} within {timeout:g} s")
    msg: tuple[Any, ...] = pipe.recv()
    if msg[0] != what:
        raise RuntimeError(f"a fleet worker answered {msg!r}, expected {what!r}")
    return msg


def storm(fleet: Fleet, observer: Observer, plan: list[tuple[float, str]],
          timeout: float = 60.0) -> list[float]:
    """Raise the planned alarms at their offsets; return each one's queue → precinct latency (ms)."""
    ids = []
    start = time.monotonic()
    for offset, kiosk in plan:
        time.sleep(max(0.0, start + offset - time.monotonic()))
        event_id = str(uuid.uuid4())
        ids.append(event_id)
        fleet.alarm(kiosk, event_id)
    observer.wait(lambda: all(e in observer.events for e in ids), timeout, "the storm's alarms")
    sent = fleet.sent_times()
    return [(observer.events[e] - sent[e]) * 1000 for e in ids]


def run(kiosks: int, per_proc: int, doomed: int, alarms: int, window: float, interval: float,
        keepalive: int, seed: int, keep: bool = False) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    folder = Path(tempfile.mkdtemp(prefix="fleet-", dir="/tmp"))
    broker = Broker(folder / "broker", log_types=("error", "warning", "notice"),
                    extra=["max_connections -1", "sys_interval 1", "max_queued_messages 10000"])
    observer: Observer | None = None
    fleet: Fleet | None = None
    try:
        broker.start()
        observer = Observer(broker, PRECINCT).start()
        built = time.monotonic()
        fleet = Fleet(folder, broker.url, kiosks, per_proc, doomed, keepalive)
        built = time.monotonic() - built
        t0 = time.monotonic()
        fleet.all("go")
        observer.wait(lambda: len(observer.online) >= kiosks, 300, f"{kiosks} births")
        connect_s = max(observer.online.values()) - t0
        plan = sorted((rng.uniform(0, window), rng.choice(list(fleet.where)[:kiosks - doomed]))
                      for _ in range(alarms))
        idle = storm(fleet, observer, plan)
        fleet.all("telemetry", interval)
        time.sleep(min(interval, 10.0))
        rate_from = observer.sys_snapshot()
        loaded = storm(fleet, observer, plan)
        rate = observer.rate_since(rate_from)
        frozen_at = fleet.freeze_doomed()
        if keep:  # to line up with the broker log's "has exceeded timeout" lines
            print(f"froze the doomed kiosks at wall time {time.time():.3f}", file=sys.stderr)
        observer.wait(lambda: all(k in observer.lost for k in fleet.doomed_ids), keepalive * 3 + 30,
                      f"{doomed} last wills")
        wills = sorted(observer.lost[k] - frozen_at for k in fleet.doomed_ids)
        online_after = len(observer.online)
        return _rows(kiosks, online_after, built, connect_s, idle, loaded, rate, wills, keepalive,
                     doomed, interval)
    finally:
        if fleet is not None:
            fleet.close()
        if observer is not None:
            observer.close()
        broker.stop()
        if keep:
            print(f"kept: {folder} (broker/mosquitto.log)", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _rows(kiosks: int, online: int, built: float, connect_s: float, idle: list[float], loaded: list[float],
          rate: dict[str, float], wills: list[float], keepalive: int, doomed: int,
          interval: float) -> list[dict[str, Any]]:
    idle99, load99 = percentile(idle, 0.99), percentile(loaded, 0.99)
    will_target = keepalive * 1.5 + 2
    return [
        {"figure": "fleet: kiosks online (births seen by the precinct)", "value": online, "unit": "kiosks",
         "target": kiosks, "higher_is_better": True},
        {"figure": "fleet: outboxes built (SQLite, one per kiosk)", "value": built, "unit": "s"},
        {"figure": "fleet: connect time, go -> last birth", "value": connect_s, "unit": "s"},
        {"figure": "fleet: broker PUBLISH messages/s in+out, telemetry on", "value": rate["total"],
         "unit": "msg/s",
         "note": f"received {rate['received']:.0f}/s, sent {rate['sent']:.0f}/s; "
                 f"telemetry every {interval:g} s"},
        {"figure": "fleet: storm alarm latency p50, fleet idle", "value": percentile(idle, 0.5),
         "unit": "ms"},
        {"figure": "fleet: storm alarm latency p99, fleet idle", "value": idle99, "unit": "ms"},
        {"figure": "fleet: storm alarm latency p50, under load", "value": percentile(loaded, 0.5),
         "unit": "ms", "baseline": percentile(idle, 0.5)},
        {"figure": "fleet: storm alarm latency p99, under load", "value": load99, "unit": "ms",
         "baseline": idle99, "target": 2 * idle99,
         "note": "target: p99 under load <= 2x the idle p99 of the same alarms"},
        {"figure": f"fleet: last wills of {doomed} power-cut kiosks, all published", "value": wills[-1],
         "unit": "s", "target": will_target,
         "note": f"first {wills[0]:.1f} s, median {percentile(wills, 0.5):.1f} s; "
                 f"target keepalive {keepalive} s x 1.5 + 2 s"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kiosks", type=int, default=2100, help="fleet size (default 2100, the city)")
    parser.add_argument("--per-proc", type=int, default=150,
                        help="kiosks per worker process (default 150; ~160 fit under select()'s 1024)")
    parser.add_argument("--doomed", type=int, default=100, help="kiosks whose power is cut (default 100)")
    parser.add_argument("--alarms", type=int, default=100, help="alarms in the storm (default 100)")
    parser.add_argument("--window", type=float, default=10.0, help="the storm's length in s (default 10)")
    parser.add_argument("--telemetry-interval", type=float, default=DEFAULT_INTERVAL,
                        help=f"seconds between telemetry messages (default: the config's "
                             f"{DEFAULT_INTERVAL:g})")
    parser.add_argument("--keepalive", type=int, default=DEFAULT_KEEPALIVE,
                        help=f"MQTT keepalive of each kiosk (default: the config's {DEFAULT_KEEPALIVE})")
    parser.add_argument("--seed", type=int, default=1, help="which kiosks raise the storm's alarms")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (the broker's log)")
    args = parser.parse_args(argv)
    if not 0 < args.doomed < args.kiosks or not 0 < args.doomed <= args.per_proc <= 160:
        parser.error("need 0 < --doomed < --kiosks and --doomed <= --per-proc <= 160")
    rows = run(args.kiosks, args.per_proc, args.doomed, args.alarms, args.window, args.telemetry_interval,
               args.keepalive, args.seed, args.keep)
    machine = (f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")
    print(f"machine: {machine}")
    for r in rows:
        verdict = ""
        if r.get("target") is not None:
            met = r["value"] >= r["target"] if r.get("higher_is_better") else r["value"] <= r["target"]
            verdict = f"  target {r['target']:.6g}: {'PASS' if met else 'FAIL'}"
        note = f"  ({r['note']})" if r.get("note") else ""
        print(f"{r['figure']:<58} {r['value']:>10.3f} {r['unit']}{verdict}{note}")
    OUT.mkdir(exist_ok=True)
    (OUT / "fleet.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
