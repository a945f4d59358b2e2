"""`make bench`: every benchmark in one run, one report. Never fails the build.

Usage: python -m bench [--quick] [--only NAME ...]

Prints the table and writes bench/report.md and bench/report.json (figure, value, baseline
measured in the same run, ratio, target, verdict, and the machine). --quick takes fewer
samples and shorter windows (a smoke run, not figures to quote).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from bench import (
    acl_render,
    before_after,
    chaos,
    control_flood,
    evidence_bench,
    fleet,
    idle_process,
    keypad_bench,
    microphone_bench,
    press_latency,
    ready_time,
    report,
    storage_bench,
    uplink_bench,
)

Suite = Callable[[], list[dict[str, Any]]]


def suites(quick: bool) -> dict[str, Suite]:
    return {
        "press": lambda: press_latency.run(200 if quick else 1000),
        "idle": lambda: idle_process.run(5.0 if quick else 30.0),
        "uplink": lambda: uplink_bench.run(100 if quick else 300, 2000 if quick else 10_000),
        "evidence": lambda: evidence_bench.run(20 if quick else 60),
        "keypad": lambda: keypad_bench.run(30 if quick else 100),
        "keypad_flood": lambda: keypad_bench.flood(300 if quick else 1000),
        "microphone": lambda: microphone_bench.run(5.0 if quick else 20.0),
        "ready": lambda: ready_time.run(3 if quick else 5),
        "fleet": lambda: fleet.run(300 if quick else 2100, 150, 50 if quick else 100, 100, 10.0,
                                   fleet.DEFAULT_INTERVAL, fleet.DEFAULT_KEEPALIVE, 1),
        "chaos": lambda: chaos.figures(seed=1, duration=40.0 if quick else 120.0),
        "control": lambda: control_flood.run(8.0 if quick else 20.0),
        "acl": lambda: acl_render.run(1 if quick else 3),
        "before_after": lambda: before_after.run(2 if quick else 12, 1 if quick else 2, 50 if quick else 200),
        "storage": lambda: storage_bench.run(30 if quick else 100, 20 if quick else 100, 1 if quick else 5),
    }


def main() -> int:
    table = suites(False)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer samples, shorter windows")
    parser.add_argument("--only", nargs="+", choices=sorted(table), metavar="NAME",
                        help=f"run only these suites ({', '.join(table)})")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    for name, suite in suites(args.quick).items():
        if args.only and name not in args.only:
            continue
        print(f"-- {name} ...", flush=True)
        try:
            rows += suite()
        except BaseException as exc:  # a broken benchmark is reported, never fails the build
            if isinstance(exc, KeyboardInterrupt):
                raise
            rows.append({"figure": f"{name}: NOT MEASURED ({type(exc).__name__}: {exc})",
                         "value": float("nan"), "unit": "", "target": None})
    info = report.machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items() if v))
    print(report.text_table(rows))
    md, js = report.write(rows, info)
    print(f"report: {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
