"""`sudo safehouse accept`: the technician's one-command acceptance of an installed kiosk.

It tests the kiosk as systemd runs it — restarted, sandboxed, as its own user — and writes
the report that goes into the installation record. The steps live in
device/cli/acceptance_steps.py; this is the command line, the help text and the report files.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from safehouse.device import __version__
from safehouse.device.cli.acceptance import KNOWN_FAILURES, write_report
from safehouse.device.cli.acceptance_console import Console
from safehouse.device.cli.acceptance_service import ServiceManager, SimService, Systemd
from safehouse.device.cli.acceptance_steps import Acceptance, Options
from safehouse.device.cli.exit_codes import EX_FAIL, EX_USAGE
from safehouse.device.core.clock import SimClock, SystemClock
from safehouse.device.runtime import config as configuration

DESCRIPTION = f"""\
The technician's acceptance of an installed kiosk, in one command (run it as root: it restarts
the unit). Everything is checked THROUGH THE RUNNING DAEMON, inside the unit's sandbox and as
its user; nothing is ever checked in this process (unlike `safehouse selftest` with the daemon
stopped, which proves nothing about the unit). The steps, in order:

  restart         systemctl daemon-reload + restart the unit; wait for READY=1 (the unit is
                  Type=notify: active/running only once drivers, outbox and socket are up)
  selftest        every selftest check, through the control socket (a selftest event, 602/608)
  acoustic-loop   the selftest's buzzer -> microphone loop (a tonal buzzer plays 1760 Hz, the
                  microphone must hear it; without a tonal buzzer: audio arrives, a warning)
  snapshots       N snapshots through the alarm camera; each must be a JPEG of exactly
                  camera.width x camera.height (read from the JPEG header)
  recording       record --record-seconds of audio through the alarm microphone: every sample
                  arrives, and zero input overflows (a warning if the driver cannot count them)
  button          you press and hold the panic button: a REAL alarm (120) is raised and must be
                  recorded, and the button seen released (tell the precinct first)
  pin             you type an enrolled volunteer's PIN and #: it must acknowledge the alarm
                  (an `ack` event from the keypad); the acceptance then resolves the alarm
                  (outcome cancelled, by acceptance)
  lid             you open the enclosure lid, then close it: `tamper`, `tamper_restored`
                  (n/a without gpio.tamper)
  keypad-replug   you unplug the keypad, then plug it back: `keypad_lost`, `keypad_restored`
  mic-replug      you unplug the microphone, then plug it back: the daemon must notice both
  journal         the unit's journal since the restart must not contain any of:
                  {", ".join(repr(s) for s in KNOWN_FAILURES[:3])},
                  {", ".join(repr(s) for s in KNOWN_FAILURES[3:])}
  stayed-up       the same process ran the whole acceptance (no crash, no watchdog restart)

Each hands-on step prints a line starting `>>> [TAG]` and waits up to --step-timeout seconds
for the kiosk's event; type `s` + Enter to skip it or `f` + Enter if it did not work. A skipped
step is not a passed one. Steps for parts the config says are not fitted are `n/a`.

The report (text + JSON, for the installation record) goes to --report-dir, named
acceptance-YYYYmmddTHHMMSSZ.txt/.json. Exit status: 0 only if every required step passed,
1 otherwise (the report and the last line name the failed steps and why), 78 bad config.

On a simulated kiosk (device.hardware = "sim") the acceptance starts its own `safehouse run`
as a child process (with a NOTIFY_SOCKET of its own; its log file is the "journal") and stops
it at the end; the hands-on steps are then done with `safehouse press --hold 1`, `safehouse
keys PIN#` and `safehouse simulate lid|keypad|microphone ...` from a second terminal.
"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    sp = sub.add_parser("accept", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
                        help="the technician's acceptance: restart the unit, check every part through it, "
                        "hands-on steps, journal scan, report; exit 0 only if all passed",
                        description=DESCRIPTION)
    sp.add_argument("--report-dir", type=Path, metavar="DIR",
                    help="where the report goes (default: STATE_DIR/acceptance, i.e. "
                    "/var/lib/safehouse/acceptance)")
    sp.add_argument("--record-seconds", type=float, default=60.0, metavar="S",
                    help="length of the recording step (default 60)")
    sp.add_argument("--snapshots", type=int, default=3, metavar="N", help="snapshots to take (default 3)")
    sp.add_argument("--ready-timeout", type=float, default=90.0, metavar="S",
                    help="how long to wait for READY=1 after the restart (default 90)")
    sp.add_argument("--step-timeout", type=float, default=120.0, metavar="S",
                    help="how long each hands-on step waits for its event (default 120)")
    sp.add_argument("--selftest-timeout", type=float, default=120.0, metavar="S",
                    help="how long the daemon's selftest may take (default 120)")
    sp.add_argument("--service", choices=["systemd", "sim"], default=None,
                    help="what to restart: the systemd unit (default on device.hardware = \"pi\") or a "
                    "simulated kiosk started here (default on \"sim\")")
    sp.add_argument("--unit", default="safehouse", help="the systemd unit (default safehouse)")
    sp.add_argument("--sim-log", type=Path, metavar="PATH",
                    help="sim only: the started daemon's log, read as its journal "
                    "(default STATE_DIR/acceptance/sim-daemon.log)")
    sp.set_defaults(func=_accept)


def _accept(args: argparse.Namespace) -> int:
    config = configuration.load(args.config)
    problems = [f"--{name} must be > 0" for name in ("record-seconds", "ready-timeout", "step-timeout",
                                                      "selftest-timeout")
                if not getattr(args, name.replace("-", "_")) > 0]  # not `<= 0`: nan passed
    if not 1 <= args.snapshots <= 10:
        problems.append("--snapshots must be 1-10")
    state_dir = config.device.state_dir
    folder = args.report_dir or state_dir / "acceptance"
    why = _unwritable(folder)
    if why:
        problems.append(f"cannot write the report in {folder}: {why}")
    if problems:
        print("safehouse accept: " + "; ".join(problems), file=sys.stderr)
        return EX_USAGE
    kind = args.service or ("sim" if config.device.hardware == "sim" else "systemd")
    service: ServiceManager
    if kind == "sim":
        if config.device.hardware != "sim":
            print("safehouse accept: --service sim needs a config with device.hardware = \"sim\"",
                  file=sys.stderr)
            return EX_USAGE
        service = SimService(Path(config.source), config.control.socket,
                             args.sim_log or state_dir / "acceptance" / "sim-daemon.log")
        clock: SystemClock = SimClock(state_dir / "sim-clock-offset")
    else:
        service, clock = Systemd(args.unit), SystemClock()
    options = Options(ready_timeout=args.ready_timeout, step_timeout=args.step_timeout,
                      record_seconds=args.record_seconds, snapshots=args.snapshots,
                      selftest_timeout=args.selftest_timeout)
    console = Console(sys.stdin, sys.stdout)
    device = {"device_id": config.device.id, "precinct": config.device.precinct, "version": __version__,
              "hardware": config.device.hardware, "config": str(config.source)}
    try:
        report = Acceptance(config, service, console, options, clock.wall).run(device)
    finally:
        service.close()
    console.say("")
    console.say(report.to_text().rstrip())
    try:
        text_path, json_path = write_report(report, folder)
    except OSError as exc:  # the report is on the screen above: say where it could not go
        print(f"safehouse accept: cannot write the report in {folder}: {exc}", file=sys.stderr)
        return EX_FAIL
    console.say(f"report: {text_path} and {json_path}")
    return 0 if report.ok else EX_FAIL


def _unwritable(folder: Path) -> str | None:
    """Why the report could not be written in ``folder``, found before anything is restarted
    (and without creating anything: the daemon makes state_dir with its own owner), or None."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable by this user"
    return None
