"""`safehouse stats [--date YYYY-MM-DD] [--json]`: the day's counts the safe-house programme is judged by.

Reads ``stats.db`` read-only, so it works with the daemon running or stopped and never leaves a
file behind. The day is a local calendar day in the system's zone; today by default, counting
open volunteer duty up to now.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from safehouse.device.cli.exit_codes import EX_FAIL, EX_USAGE
from safehouse.device.runtime import config as configuration
from safehouse.services.stats import DayReport, check_date, local_zone, read_day, zone_name

LABELS = {
    "alarms": "alarms raised",
    "test_alarms": "test alarms",
    "people_helped": "people helped",
    "walk_ins": "walk-ins",
    "clues": "clues received",
    "police": "incidents handed to police",
    "false_alarms": "false alarms",
    "duty_hours": "volunteer duty hours",
    "rollcalls_answered": "roll calls answered",
    "rollcalls_missed": "roll calls missed",
    "wrong_pin_lockouts": "wrong-PIN lockouts",
}


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    help_ = "the day's counts: alarms, people helped, volunteer duty hours (daemon may be stopped)"
    sp = sub.add_parser("stats", parents=[common], help=help_, description=help_)
    sp.add_argument("--date", metavar="YYYY-MM-DD", help="which local day (default: today)")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=_stats)


def _stats(args: argparse.Namespace) -> int:
    if args.date is not None:
        try:
            check_date(args.date)
        except ValueError as exc:
            print(f"safehouse stats: {exc}", file=sys.stderr)
            return EX_USAGE
    state_dir = configuration.load(args.config).device.state_dir
    zone = local_zone()
    try:
        report = read_day(state_dir, args.date, tz=zone)
    except OverflowError:  # 9999-12-31: its day ends past the last date Python holds
        print(f"safehouse stats: date {args.date!r} is out of range (its day ends after 9999-12-31)",
              file=sys.stderr)
        return EX_USAGE
    if report is None:
        print(f"no stats yet in {state_dir}: the daemon has not counted anything with this state_dir",
              file=sys.stderr)
        return EX_FAIL
    if args.json:
        print(json.dumps({**report.counts.as_dict(), "summarised": report.summarised,
                          "on_duty": list(report.on_duty), "timezone": zone_name(zone)},
                         indent=2, sort_keys=True))
    else:
        print(render(report, zone_name(zone)))
    return 0


def render(report: DayReport, zone: str) -> str:
    """The human view: one aligned line per counter."""
    counts = report.counts.as_dict()
    state = "summarised" if report.summarised else "open: duty counted up to now"
    lines = [f"{report.counts.date} ({zone}, {state})"]
    width = max(len(label) for label in LABELS.values())
    for key, label in LABELS.items():
        value = f"{report.counts.duty_hours:.1f}" if key == "duty_hours" else str(counts[key])
        lines.append(f"  {label:<{width}}  {value:>7}")
    if report.on_duty:
        lines.append(f"  on duty now: {', '.join(report.on_duty)}")
    return "\n".join(lines)
