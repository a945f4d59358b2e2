"""`safehouse selftest [--json]`: every part checked, a table for a human, JSON for machines.

Talks to the running daemon; when it is stopped, builds the kiosk in this process, checks
it and closes it again. Exit status 1 when any check fails. Each run is recorded as a
`selftest` event (Contact ID 602 all good, 608 with trouble).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from safehouse.device import config as configuration
from safehouse.device.errors import ControlError
from safehouse.services.control import request

WARM_UP = 1.5  # standalone: the camera and microphone start in the background


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = sub.add_parser("selftest", parents=[common], help="check every part of the kiosk; exit 1 on "
                        "any failure (also run daily by safehouse-selftest.timer)",
                        description="Checks the light box, button, microphone, camera, keypad, broker, "
                        "disk, clock and outbox, and records a selftest event (602 ok, 608 trouble).")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=_selftest)


def _selftest(args: argparse.Namespace) -> int:
    config = configuration.load(args.config)
    try:
        result = request(config.control.socket, "selftest", timeout=30.0)
        checks: list[dict[str, Any]] = result["checks"]
    except ControlError as exc:
        if "not running" not in str(exc):
            raise
        checks = _standalone(config)
    ok = all(c["ok"] for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": checks}, indent=2))
    else:
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'}  {c['name']:<13} {c['detail']}")
        print("selftest passed" if ok else "selftest FAILED: " + ", ".join(c["name"] for c in checks
                                                                          if not c["ok"]))
    return 0 if ok else 1


def _standalone(config: configuration.Config) -> list[dict[str, Any]]:
    from safehouse.device.daemon import Daemon

    daemon = Daemon(config)
    try:
        daemon.start()
        time.sleep(WARM_UP)
        return daemon.selftest("technician")
    finally:
        daemon.close()
