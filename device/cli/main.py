"""`safehouse`: the one command a technician uses over SSH to run, drive and inspect a kiosk.

Every failure is one line on stderr that says what to do, with a stable exit status:
0 ok, 1 refused or daemon unreachable, 2 usage, 78 bad configuration (EX_CONFIG).
Every argument must be printable UTF-8 text (device/cli/arguments.py): a stray byte is a usage
error before anything is read or sent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from safehouse.device import __version__
from safehouse.device.cli import outbox as cli_outbox
from safehouse.device.cli.accept import add_parser as add_accept_parser
from safehouse.device.cli.acl import add_parser as add_acl_parser
from safehouse.device.cli.arguments import refuse_bad_argv, text
from safehouse.device.cli.evidence import add_parser as add_evidence_parser
from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.cli.provision import add_parser as add_provision_parser
from safehouse.device.cli.selftest import add_parser as add_selftest_parser
from safehouse.device.cli.stats import add_parser as add_stats_parser
from safehouse.device.cli.status_text import render_status
from safehouse.device.cli.volunteer import add_parser as add_volunteer_parser
from safehouse.device.core.clock import iso_utc
from safehouse.device.core.errors import ConfigError, SafehouseError
from safehouse.device.runtime import config as configuration
from safehouse.services.control import request
from safehouse.services.outbox import open_readonly_stats, read_events

MAX_BY = 64  # who acknowledges or resolves: the daemon takes at most this many characters
MAX_KEYS = 64  # keys typed at once on the simulated keypad
EPILOG = """\
config file: --config PATH, else $SAFEHOUSE_CONFIG, else /etc/safehouse/config.toml.
exit status: 0 ok, 1 refused or daemon not running, 2 usage (also an argument that is not
printable UTF-8 text), 78 configuration error.
examples:
  safehouse --config config/sim.toml run           # a kiosk on simulated hardware
  safehouse --config config/sim.toml press         # push the (simulated) panic button
  safehouse --config config/sim.toml status --json
  safehouse config check /etc/safehouse/config.toml
"""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=argparse.SUPPRESS,
                        help="config file (default: $SAFEHOUSE_CONFIG or /etc/safehouse/config.toml)")
    p = argparse.ArgumentParser(prog="safehouse", description="Safe House kiosk firmware: run, "
                                "drive and inspect the panic kiosk.", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", metavar="PATH", default=None, help=argparse.SUPPRESS)
    p.add_argument("--version", action="version", version=f"safehouse {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    run = add("run", "run the kiosk daemon in the foreground (systemd runs this)", _run)
    run.add_argument("--sim", action="store_true", help="simulated hardware whatever the config says")
    st = add("status", "alarm state, light pattern, link and pending events of the running daemon",
             _status)
    st.add_argument("--json", action="store_true", help="machine-readable output")
    pr = add("press", "push the simulated panic button (sim only); prints the alarm it raised", _press)
    pr.add_argument("--hold", type=float, metavar="SECONDS",
                    help="keep it pressed this long (0 = until `safehouse release`)")
    pr.add_argument("--json", action="store_true",
                    help="machine-readable output (with record: durable | delivered | sent_from_memory | "
                         "memory_only, and why)")
    add("release", "release the simulated panic button (sim only)", _simple("release"))
    ks = add("keys", "type on the simulated keypad (sim only), e.g. '1234#'", _keys)
    ks.add_argument("keys", metavar="STRING", type=text(MAX_KEYS), help="keys 0-9 * #")
    add("test-alarm", "raise a test alarm (marked test everywhere)", _test_alarm)
    ak = add("ack", "acknowledge the active alarm on site", _ack)
    ak.add_argument("--by", default="technician", type=text(MAX_BY),
                    help="who acknowledges (default: technician)")
    rs = add("resolve", "end the active alarm with an outcome", _resolve)
    rs.add_argument("outcome", choices=["assistance", "false_alarm", "police", "cancelled"])
    rs.add_argument("--by", default="technician", type=text(MAX_BY),
                    help="who resolves (default: technician)")
    ev = add("events", "print the recorded events (reads state_dir; the daemon may be stopped)", _events)
    ev.add_argument("--follow", "-f", action="store_true", help="keep printing new events")
    ev.add_argument("--json", action="store_true", help="one JSON object per line")
    ev.add_argument("--last", type=_count, metavar="N", help="only the last N events")
    ob = add("outbox", "what waits for the precinct: depth per lane, oldest age, last delivery; "
             "--check and --salvage: the storage tools (daemon stopped)", _outbox)
    ob.add_argument("--json", action="store_true", help="machine-readable output")
    cli_outbox.add_arguments(ob)
    sim = add("simulate", "sim only: break or mend a simulated part (camera raise|hang|none; "
              "core hang: the core loop stops answering, to prove the systemd watchdog; "
              "clock jump --seconds ±S: step the kiosk's wall clock, clock none: undo; "
              "lid open|close; keypad|microphone unplug|replug: the technician's hands in "
              "`safehouse accept`)", _simulate)
    sim.add_argument("part", choices=["camera", "core", "clock", "lid", "keypad", "microphone"])
    sim.add_argument("fault", choices=["raise", "hang", "jump", "none", "open", "close", "unplug", "replug"])
    sim.add_argument("--seconds", type=float, default=None,
                     help="core hang: how long (default 10); clock jump: by how much, e.g. -3600")
    add_evidence_parser(sub, common)
    add_volunteer_parser(sub, common)
    add_stats_parser(sub, common)
    add_selftest_parser(sub, common)
    add_accept_parser(sub, common)
    add_provision_parser(sub, common)
    add_acl_parser(sub, common)
    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    chk = cfg_sub.add_parser("check", parents=[common], help="validate a config file and print the "
                             "effective config; exit 78 listing every problem")
    chk.add_argument("path", nargs="?", help="config file (default: as for every command)")
    chk.set_defaults(func=_config_check)
    return p


def _count(text: str) -> int:
    """N >= 0 (``--last -1`` once printed all events but the first)."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {n}")
    return n


def _load(args: argparse.Namespace, **kw: Any) -> configuration.Config:
    return configuration.load(args.config, **kw)


def _call(args: argparse.Namespace, cmd: str, **kw: Any) -> Any:
    return request(_load(args).control.socket, cmd, **kw)


def _run(args: argparse.Namespace) -> int:
    from safehouse.device.cli.logsetup import setup_logging
    from safehouse.device.runtime.daemon import Daemon
    from safehouse.device.runtime.memory import give_back_large_blocks

    config = _load(args, hardware="sim" if args.sim else None)
    setup_logging(config.logging.level)
    give_back_large_blocks()  # an alarm's frames do not stay resident after it
    return Daemon(config).run()


def _status(args: argparse.Namespace) -> int:
    result = _call(args, "status")
    print(json.dumps(result, indent=2, sort_keys=True) if args.json else render_status(result))
    return 0


def _press(args: argparse.Namespace) -> int:
    kw = {} if args.hold is None else {"hold": args.hold}
    result = _call(args, "press", **kw)
    if args.json:
        print(json.dumps(result, sort_keys=True))
        return 0
    alarm = result["alarm"]
    if alarm["state"] == "idle":
        print("press registered; no alarm raised yet (button.trigger = 'hold')")
    else:
        what = "new alarm" if result["new_alarm"] else "counted on the active alarm"
        print(f"accepted: {what} {alarm['event_id']} ({alarm['state']}, presses={alarm['presses']})")
        if "record" in result:
            print(f"{result['record'].replace('_', ' ')}: {result['why']}")
    return 0


def _test_alarm(args: argparse.Namespace) -> int:
    result = _call(args, "test-alarm")
    print(f"accepted: test alarm {result['alarm']['event_id']}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    result = _call(args, "keys", keys=args.keys)
    print(f"sent {result['sent']} key(s); entry length {result['entry_length']}")
    if result["rejected"]:
        print(f"rejected: {result['last_rejection']}", file=sys.stderr)
        return EX_FAIL
    return 0


def _ack(args: argparse.Namespace) -> int:
    result = _call(args, "ack", by=args.by)
    print(f"acknowledged alarm {result['alarm']['event_id']} as {args.by}")
    return 0


def _resolve(args: argparse.Namespace) -> int:
    _call(args, "resolve", outcome=args.outcome, by=args.by)
    print(f"resolved: {args.outcome}")
    return 0


def _simple(cmd: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        result = _call(args, cmd)
        print(json.dumps(result, sort_keys=True))
        return 0

    return handler


def _events(args: argparse.Namespace) -> int:
    state_dir = _load(args).device.state_dir
    events = list(read_events(state_dir)) if args.last is not None else None
    source = (events[len(events) - args.last:] if events is not None  # not [-N:]: [-0:] is all of them
              else read_events(state_dir, follow=args.follow))
    try:
        for event in source:
            print(event.to_json() if args.json else event.summary(), flush=True)
        if events is not None and args.follow:
            for event in read_events(state_dir, follow=True):
                if event.seq > (events[-1].seq if events else 0):
                    print(event.to_json() if args.json else event.summary(), flush=True)
    except (KeyboardInterrupt, BrokenPipeError):
        return 0
    return 0


def _simulate(args: argparse.Namespace) -> int:
    seconds = args.seconds if args.seconds is not None else (10.0 if args.part == "core" else 0.0)
    answer = _call(args, "simulate", part=args.part, fault=args.fault, seconds=seconds)
    offset = answer.get("offset_s") if isinstance(answer, dict) else None
    print(f"simulated {args.part}: {args.fault}" + (f" (wall clock now off by {offset:+g} s)"
                                                     if offset is not None else ""))
    return 0


def _outbox(args: argparse.Namespace) -> int:
    if cli_outbox.wanted(args):
        return cli_outbox.run(args, _load(args))
    stats = open_readonly_stats(_load(args).device.state_dir)
    if stats is None:
        print("no outbox yet: the daemon has not run with this state_dir", file=sys.stderr)
        return EX_FAIL
    view = stats.as_dict()
    if args.json:
        print(json.dumps(view, indent=2, sort_keys=True))
        return 0
    print("pending  " + ", ".join(f"{lane} {n}" for lane, n in view["depth"].items()))
    age = view["oldest_pending_age_s"]
    print(f"oldest   {'-' if age is None else f'{age:.0f} s'}")
    last = view["last_delivery"]
    print(f"last delivery {'never' if last is None else iso_utc(last)}")
    print(f"last seq {view['last_seq']}" + ("  NEAR FULL" if view["near_full"] else ""))
    if any(view["dropped"].values()):
        print(f"dropped  {view['dropped']}")
    return 0


def _config_check(args: argparse.Namespace) -> int:
    config = configuration.load(args.path or args.config)
    print(f"# {config.source}: valid\n")
    print(configuration.to_toml(config.as_dict()))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    refuse_bad_argv(parser, argv)  # a stray byte never reaches a handler, let alone the daemon
    args = parser.parse_args(argv)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader gone early (`| head`) shows up here, not as a traceback at exit
        return code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more to flush at exit
        return EX_FAIL
    except ConfigError as exc:
        print(f"safehouse: {exc}", file=sys.stderr)
        return configuration.EX_CONFIG
    except SafehouseError as exc:
        print(f"safehouse: {exc}", file=sys.stderr)
        return EX_FAIL
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
