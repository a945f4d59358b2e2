"""`safehouse volunteer add|remove|list`: enrol the people who acknowledge alarms on the keypad.

PINs are typed at a no-echo prompt, twice, or piped with ``--pin-stdin`` (line 1 the PIN, line 2
the duress PIN when ``--duress``) for provisioning scripts. The file is rewritten atomically and
the running kiosk reloads it by itself, so no restart is needed. Hashes are never printed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from safehouse.device.cli.exit_codes import EX_USAGE
from safehouse.device.runtime import config as configuration
from safehouse.services.volunteers import InvalidPin, VolunteerRegistry
from safehouse.services.volunteers_edit import add, remove

PICKED_UP = "the running kiosk picks it up within a few seconds"


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    vol = sub.add_parser("volunteer", help="enrol, remove and list the volunteers who may use the keypad")
    actions = vol.add_subparsers(dest="volunteer_command", metavar="ACTION", required=True)
    ad = actions.add_parser("add", parents=[common], help="enrol a volunteer and set their keypad PIN "
                            "(asked twice, not echoed)")
    ad.add_argument("id", metavar="ID", help="volunteer id, 1-32 of A-Z a-z 0-9 _ - (e.g. v042)")
    ad.add_argument("--name", required=True, help="display name, e.g. 'Chan Tai Man'")
    ad.add_argument("--duress", action="store_true",
                    help="also set a duress PIN: it acknowledges like the PIN and raises a silent alarm")
    ad.add_argument("--pin-stdin", action="store_true",
                    help="read the PIN from stdin's first line (and the duress PIN from the second)")
    ad.set_defaults(func=_add)
    rm = actions.add_parser("remove", parents=[common], help="remove a volunteer; their PINs stop working")
    rm.add_argument("id", metavar="ID", help="volunteer id")
    rm.set_defaults(func=_remove)
    ls = actions.add_parser("list", parents=[common], help="enrolled volunteers: id, name, duress PIN set")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)


def _path(args: argparse.Namespace) -> Path:
    return configuration.load(args.config).keypad.volunteers


def _add(args: argparse.Namespace) -> int:
    path = _path(args)  # a bad config fails before anyone types a PIN
    if args.pin_stdin:
        pins = [sys.stdin.readline().rstrip("\r\n") for _ in range(2 if args.duress else 1)]
        if not all(pins):
            what = "two lines (PIN, then duress PIN)" if args.duress else "one line (the PIN)"
            print(f"safehouse: --pin-stdin expects {what} on stdin; nothing written", file=sys.stderr)
            return EX_USAGE
    elif not sys.stdin.isatty():
        print("safehouse: no terminal to ask the PIN on: pipe it with --pin-stdin; nothing written",
              file=sys.stderr)
        return EX_USAGE
    else:
        pins = [_ask(f"PIN for {args.id} (4-8 digits): ")]
        if args.duress:
            pins.append(_ask(f"duress PIN for {args.id} (acknowledges and raises a silent alarm): "))
    volunteer = add(path, args.id, args.name, pins[0], pins[1] if args.duress else None)
    extra = " with a duress PIN" if volunteer.has_duress else ""
    print(f"added {volunteer.id} ({volunteer.name}){extra}; {PICKED_UP}")
    return 0


def _ask(prompt: str) -> str:
    first = getpass.getpass(prompt)
    again = getpass.getpass("again, to confirm: ")
    if first != again:  # both typed by the same person just now: nothing to hide by timing
        raise InvalidPin("the two entries differ; nothing written")
    return first


def _remove(args: argparse.Namespace) -> int:
    volunteer = remove(_path(args), args.id)
    print(f"removed {volunteer.id} ({volunteer.name}); {PICKED_UP}")
    return 0


def _list(args: argparse.Namespace) -> int:
    path = _path(args)
    registry = VolunteerRegistry.load(path)
    rows: list[dict[str, Any]] = [{"id": v.id, "name": v.name, "duress": v.has_duress}
                                  for v in registry.volunteers]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no volunteers enrolled in {path}: every keypad PIN is refused")
        return 0
    width = max(len(r["id"]) for r in rows)
    print(f"{'id':<{width}}  duress  name")
    for r in rows:
        print(f"{r['id']:<{width}}  {'yes' if r['duress'] else 'no':<6}  {r['name']}")
    print(f"{len(rows)} volunteer(s) in {path} (version {registry.version})")
    return 0
