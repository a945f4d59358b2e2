"""`safehouse acl render --inventory FILE [--out FILE]`: the precinct broker's ACL from the fleet inventory.

Runs on the machine that holds the inventory (the Ansible control machine or the broker), not
on a kiosk. The inventory is the one ``deploy/ansible/site.yml`` provisions from, so the broker
grants exactly the kiosks that exist, each only its own topics (``services/acl.py``).

Exit codes: 0 written, 2 usage, 78 the inventory is unreadable or invalid (every problem listed,
nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.cli.inventory_yaml import load
from safehouse.device.cli.provisioning import atomic_write

EPILOG = """\
example (on the Ansible control machine):
  safehouse acl render --inventory inventory.yml --out /etc/mosquitto/safehouse.acl
  sudo systemctl reload mosquitto          # mosquitto re-reads acl_file on SIGHUP

The inventory is deploy/ansible's: per host device_id, precinct, optional alliance; per
precinct group `consoles: [CN, ...]` (the console certificates' names). host_vars/ and
group_vars/ beside the inventory (and beside the playbook, with --playbook-dir) are read as
Ansible reads them. A key written twice, an unreadable vars file or an inventory past its caps
(size, depth, aliases) is refused. See docs/precinct-broker.md.

exit codes: 0 written, 2 usage, 78 invalid inventory (every problem listed, nothing written)"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    acl = sub.add_parser("acl", help="the precinct broker's mosquitto ACL (run off the kiosk)")
    actions = acl.add_subparsers(dest="acl_command", metavar="ACTION", required=True)
    render = actions.add_parser("render", parents=[common], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                help="write the per-kiosk ACL for the fleet inventory",
                                description="Write a least-privilege mosquitto ACL: one user block "
                                "per kiosk and per precinct console of the inventory.")
    render.add_argument("--inventory", required=True, type=Path, metavar="FILE",
                        help="the Ansible YAML inventory (deploy/ansible/inventory.example.yml)")
    render.add_argument("--out", type=Path, metavar="FILE", default=None,
                        help="write here (atomically, mode 0644); default: standard output")
    render.add_argument("--playbook-dir", type=Path, metavar="DIR", default=None,
                        help="the playbook's folder (as ansible-inventory's --playbook-dir): its host_vars/ "
                        "and group_vars/ are read too, over the inventory's")
    render.set_defaults(func=_render)


def _render(args: argparse.Namespace) -> int:
    from safehouse.services.acl import render_acl
    from safehouse.services.inventory import read_fleet
    from safehouse.services.inventory_files import VarsFolders

    path: Path = args.inventory
    bases = [path.parent] + ([args.playbook_dir] if args.playbook_dir is not None else [])
    fleet = read_fleet(load(path), str(path), VarsFolders(bases, load))
    text = render_acl(fleet, source=path.name)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    try:
        # beside the target, then renamed: mosquitto reloading meanwhile sees the old or new file;
        # 0644: mosquitto's own user reads it, and it holds names, not secrets
        atomic_write(args.out, text.encode("utf-8"), 0o644)
    except OSError as exc:
        print(f"safehouse: cannot write {args.out}: {exc}", file=sys.stderr)
        return EX_FAIL
    consoles = len({u for users in fleet.consoles.values() for u in users})
    print(f"wrote {args.out}: {len(fleet.kiosks)} kiosk(s), {consoles} console user(s), "
          f"precinct(s) {', '.join(fleet.precincts) or 'none'}")
    return 0
