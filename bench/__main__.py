"""`make bench`: every benchmark in one run, printed as one table. Never fails the build.

Usage: python -m bench [--quick]   (--quick: fewer samples, a 5 s idle window)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import evidence_bench, idle_process, keypad_bench, press_latency, ready_time, uplink_bench

OUT = Path(__file__).resolve().parent / "out"


def _row(r: dict[str, Any]) -> str:
    base = r.get("baseline")
    target = r.get("target")
    ratio = f"{r['value'] / base:.2f}x" if base else "-"
    if target is None:
        verdict = "-"
    else:
        met = r["value"] >= target if r.get("higher_is_better") else r["value"] <= target
        verdict = "PASS" if met else "FAIL"
    return (f"{r['figure']:<58} {r['value']:>9.3f} {r['unit']:<14} "
            f"{'-' if base is None else f'{base:.3f}':>9} {ratio:>7} {'-' if target is None else target:>7} "
            f"{verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    suites: list[tuple[str, Callable[[], list[dict[str, Any]]]]] = [
        ("press latency", lambda: press_latency.run(200 if args.quick else 1000)),
        ("idle process", lambda: idle_process.run(5.0 if args.quick else 30.0)),
        ("uplink", lambda: uplink_bench.run(100 if args.quick else 300, 2000 if args.quick else 10_000)),
        ("evidence", lambda: evidence_bench.run(20 if args.quick else 60)),
        ("keypad", lambda: keypad_bench.run(30 if args.quick else 100)),
        ("ready", lambda: ready_time.run(3 if args.quick else 5)),
    ]
    for name, suite in suites:
        try:
            rows += suite()
        except Exception as exc:  # a broken benchmark is reported, never fails the build
            rows.append({"figure": f"{name}: NOT MEASURED ({type(exc).__name__}: {exc})",
                         "value": float("nan"), "unit": "", "target": None})
    machine = (f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, "
               f"Python {platform.python_version()}")
    print(f"machine: {machine}")
    print(f"{'figure':<58} {'value':>9} {'unit':<14} {'baseline':>9} {'ratio':>7} {'target':>7} verdict")
    for r in rows:
        print(_row(r))
    notes = [f"  {r['figure']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        print("notes:\n" + "\n".join(notes))
    OUT.mkdir(exist_ok=True)
    (OUT / "bench.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
