"""`safehouse provision`: give a kiosk its identity, broker and TLS material, checked first.

Exit codes: 0 provisioned (or nothing to change), 1 refused (bad certificate or key, or the
--check round trip failed), 2 usage, 78 the resulting configuration would be invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from safehouse.device.cli import provisioning as prov
from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.cli.provision_check import round_trip
from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime import config as configuration
from safehouse.device.runtime.config import EX_CONFIG

EPILOG = """\
example (on the kiosk, as root):
  safehouse provision --device-id SH-0042 --precinct north-7 --alliance elm-street \\
      --broker mqtts://broker.precinct.example:8883 \\
      --ca ca.pem --cert SH-0042.pem --key SH-0042.key --check

Writes /etc/safehouse/config.toml (0640, group safehouse) and /etc/safehouse/tls/{ca.pem,
client.pem,client.key} (key 0600). Settings not named here are kept. Nothing is written
when the certificate does not match the key, is not signed by the CA or has expired (a
certificate expiring within 30 days only warns). Re-running with the same arguments
changes nothing. --check then connects with the installed credentials and round-trips a
probe on safehouse/v1/PRECINCT/DEVICE/provision/check.

Run --check with the service stopped (before `systemctl start safehouse`). The precinct
broker gives every connection made with the kiosk's certificate the kiosk's own client id,
so a second connection while the daemon runs would briefly take over the kiosk's session
(the precinct would see it offline, then online): --check refuses when the daemon's control
socket answers. With the daemon running, `safehouse selftest --daemon-only` checks the
broker over the daemon's own connection instead.

exit codes: 0 ok, 1 refused or --check failed, 2 usage, 78 invalid configuration"""


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("provision", parents=[common],
                       help="install identity, broker URL and TLS material (checked first)",
                       description="Install this kiosk's identity, broker URL and TLS client "
                       "certificate into /etc/safehouse, after checking them.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device-id", required=True, metavar="ID", help="kiosk id (also the MQTT client id)")
    p.add_argument("--precinct", required=True, metavar="P", help="precinct the kiosk reports to")
    p.add_argument("--broker", required=True, metavar="URL", help="mqtts://host[:port] (or mqtt://)")
    p.add_argument("--ca", required=True, type=Path, metavar="PATH", help="CA certificate (PEM)")
    p.add_argument("--cert", required=True, type=Path, metavar="PATH", help="client certificate (PEM)")
    p.add_argument("--key", required=True, type=Path, metavar="PATH", help="client private key (PEM)")
    p.add_argument("--alliance", metavar="A", default=None, help="neighbourhood alliance id ('' = none; "
                   "default: keep the current one)")
    p.add_argument("--hardware", choices=("pi", "sim"), default=None,
                   help="real GPIO or simulated (default: keep the current one)")
    p.add_argument("--root", type=Path, default=Path("/"), metavar="DIR",
                   help="install under DIR instead of / (image building, tests)")
    p.add_argument("--check", action="store_true",
                   help="afterwards, round-trip a probe through the broker with the installed credentials "
                   "on a connection of its own (refused while the daemon runs: it would briefly take over "
                   "the kiosk's session; use `safehouse selftest --daemon-only` then)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="S", help="--check timeout (default 10)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    req = prov.Request(device_id=args.device_id, precinct=args.precinct, broker_url=args.broker,
                       ca=args.ca, cert=args.cert, key=args.key, alliance=args.alliance,
                       hardware=args.hardware, root=args.root)
    try:
        result = prov.provision(req, openssl=prov.openssl_path())
    except ConfigError as exc:
        print(f"safehouse: {exc}", file=sys.stderr)
        return EX_CONFIG
    except prov.ProvisionError as exc:
        print(f"safehouse: {exc}", file=sys.stderr)
        return EX_FAIL
    for warning in result.warnings:
        print(f"warning: {warning}")
    if result.unchanged:
        print("no changes")
    else:
        print("changed:")
        for line in result.changed:
            print(f"  {line}")
    for note in result.notes:
        print(f"note: {note}")
    if not args.check:
        return 0
    return check(req, args.timeout)


def check(req: prov.Request, timeout: float) -> int:
    from safehouse.services.mqtt_link import LinkError

    running = _daemon_answers(req.root)
    if running is not None:
        print(f"safehouse: --check refused: the daemon is running (it answers on {running}). --check "
              "connects with the kiosk's own certificate, and the precinct broker gives that connection the "
              "kiosk's client id, so it would take over the daemon's session (the precinct would see the "
              "kiosk offline, then online). Run `safehouse selftest --daemon-only` instead: its broker check "
              "uses the daemon's own connection (restart the daemon first to use newly installed "
              "credentials); or stop the daemon and run --check again.", file=sys.stderr)
        return EX_FAIL
    ca, cert, key = prov.installed_tls(req.root)
    try:
        seconds = round_trip(req.broker_url, req.device_id, req.precinct, ca=ca, cert=cert, key=key,
                             timeout=timeout)
    except LinkError as exc:
        print(f"safehouse: --check failed: {exc}", file=sys.stderr)
        return EX_FAIL
    print(f"check: round trip through {req.broker_url} in {seconds * 1000:.0f} ms")
    return 0


def _daemon_answers(root: Path) -> Path | None:
    """The control socket of a daemon running with the provisioned config, or None."""
    from safehouse.device.cli.outbox import daemon_running

    try:
        config = configuration.load(root / prov.CONFIG_REL)
    except ConfigError:  # just provisioned and validated; unreadable now: nothing runs with it
        return None
    return config.control.socket if daemon_running(config) else None
