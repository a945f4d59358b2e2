"""`safehouse selftest [--json]`: every part checked, a table for a human, JSON for machines.

Talks to the running daemon; when it is stopped, builds the kiosk in this process, checks
it and closes it again. Exit status 1 when any check fails. Each run is recorded as a
`selftest` event (Contact ID 602 all good, 608 with trouble).

That standalone run is NOT the unit: it runs as whoever typed the command (root, under sudo),
outside the unit's sandbox (read-only root, DeviceAllow=, its user and groups), so it passes on
a kiosk whose unit cannot open the GPIO chip, the camera or the microphone. It says so, loudly,
on every line a technician might read; `--daemon-only` refuses it, and `safehouse accept` never
uses it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.core.errors import ControlError
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.selftest import process_identity
from safehouse.services.control import request

WARM_UP = 1.5  # standalone: the camera and microphone start in the background


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = sub.add_parser("selftest", parents=[common], help="check every part of the kiosk; exit 1 on "
                        "any failure (also run daily by safehouse-selftest.timer)",
                        description="Checks the light box, button, microphone, camera, keypad, broker, "
                        "disk, clock and outbox, and records a selftest event (602 ok, 608 trouble).")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("--daemon-only", action="store_true",
                    help="only through the running daemon (inside the unit's sandbox): exit 1 when it is "
                    "stopped instead of checking outside the sandbox")
    sp.set_defaults(func=_selftest)


def _selftest(args: argparse.Namespace) -> int:
    config = configuration.load(args.config)
    standalone: str | None = None
    try:
        result = request(config.control.socket, "selftest", timeout=30.0)
        checks: list[dict[str, Any]] = result["checks"]
        ran_as: dict[str, Any] = result.get("ran_as") or {}
    except ControlError as exc:
        if "not running" not in str(exc) or args.daemon_only:
            raise
        standalone = outside_warning(str(config.control.socket))
        print(standalone, file=sys.stderr, flush=True)
        checks = _standalone(config)
        ran_as = process_identity()
    ok = all(c["ok"] for c in checks)
    if args.json:
        body: dict[str, Any] = {"ok": ok, "checks": checks, "through_daemon": standalone is None,
                                "ran_as": ran_as}
        if standalone is not None:
            body["warning"] = standalone
        print(json.dumps(body, indent=2))
    else:
        for c in checks:
            print(f"{'ok  ' if c['ok'] else 'FAIL'}  {c['name']:<13} {c['detail']}")
        print("selftest passed" if ok else "selftest FAILED: " + ", ".join(c["name"] for c in checks
                                                                          if not c["ok"]))
        if standalone is None and ran_as:
            print(f"ran in the daemon: pid {ran_as.get('pid')}, user {ran_as.get('user')}"
                  + (", under systemd" if ran_as.get("systemd_invocation") else ", NOT under systemd"))
        if standalone is not None:
            print(standalone)
    if standalone is not None and args.json:
        print(standalone, file=sys.stderr)
    return 0 if ok else EX_FAIL


def outside_warning(socket: str) -> str:
    """What a standalone run must say: where it ran, as whom, and what it does not prove."""
    me = process_identity()
    return (f"WARNING: the daemon is not running (no answer on {socket}): these checks ran in this "
            f"process as user {me['user']} (uid {me['uid']}), OUTSIDE the safehouse unit's sandbox. They "
            "are NOT proof that the unit works. Start it (sudo systemctl start safehouse) and run "
            "`safehouse selftest` again, or run `sudo safehouse accept`.")


def _standalone(config: configuration.Config) -> list[dict[str, Any]]:
    from safehouse.device.runtime.daemon import Daemon

    daemon = Daemon(config)
    try:
        daemon.start()
        time.sleep(WARM_UP)
        return daemon.selftest("technician")
    finally:
        daemon.close()
