"""`safehouse acl render --inventory FILE [--out FILE]`: the precinct broker's ACL from the fleet inventory.

Runs on the machine that holds the inventory (the Ansible control machine or the broker), not
on a kiosk. The inventory is the one ``deploy/ansible/site.yml`` provisions from, so the broker
grants exactly the kiosks that exist, each only its own topics (``services/acl.py``).

Exit codes: 0 written, 2 usage, 78 the inventory is unreadable or invalid (every problem listed,
nothing written).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.cli.provisioning import atomic_write
from safehouse.device.core.errors import ConfigError

EPILOG = """\
example (on the Ansible control machine):
  safehouse acl render --inventory inventory.yml --out /etc/mosquitto/safehouse.acl
  sudo systemctl reload mosquitto          # mosquitto re-reads acl_file on SIGHUP

The inventory is deploy/ansible's: per host device_id, precinct, optional alliance; per
precinct group `consoles: [CN, ...]` (the console certificates' names). See
docs/precinct-broker.md.

exit codes: 0 written, 2 usage, 78 invalid inventory (every problem listed, nothing written)"""


_TOO_DEEP = "nested too deeply to read (hundreds of levels): an inventory nests a few groups deep"


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
    render.set_defaults(func=_render)


def _render(args: argparse.Namespace) -> int:
    from safehouse.services.acl import render_acl
    from safehouse.services.inventory import read_fleet

    path: Path = args.inventory
    fleet = read_fleet(load_inventory(path), str(path))
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


def load_inventory(path: Path) -> Any:
    """Parse the inventory (YAML, or JSON which is YAML too); any failure is a ``ConfigError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), [f"cannot read the inventory: {exc}"]) from exc
    try:
        yaml = importlib.import_module("yaml")  # untyped here, and only needed off the kiosk
    except ImportError:  # the control machine has PyYAML with Ansible; a JSON inventory needs nothing
        try:
            return json.loads(text)
        except RecursionError as exc:
            raise ConfigError(str(path), [_TOO_DEEP]) from exc
        except ValueError as exc:
            raise ConfigError(str(path), [f"not JSON ({exc}), and PyYAML is not installed to read YAML "
                                          "(pip install pyyaml)"]) from exc
    try:
        return yaml.load(text, Loader=_loader(yaml))  # a SafeLoader subclass: no object tags
    except RecursionError as exc:  # both parsers recurse per level: a few hundred levels end the stack
        raise ConfigError(str(path), [_TOO_DEEP]) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc


def _loader(yaml: Any) -> Any:
    """SafeLoader that reads Ansible's ``!unsafe`` as text and ``!vault`` as an unusable marker."""

    class InventoryLoader(yaml.SafeLoader):  # type: ignore[misc]
        pass

    InventoryLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
    InventoryLoader.add_constructor("!vault", lambda _loader, _node: "<vault-encrypted value>")
    return InventoryLoader
