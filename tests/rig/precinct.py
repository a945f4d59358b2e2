"""A mosquitto that runs the repository's own ``config/mosquitto-precinct.conf``.

Kept apart from ``tests/rig/broker.py`` (which it builds on) so the shipped broker settings, not
the rig's defaults, are what tests/e2e/test_broker_permissions.py exercises.
"""

from __future__ import annotations

from pathlib import Path

from tests.rig import REPO
from tests.rig.broker import Broker, BrokerError
from tests.rig.net import HOST
from tests.rig.pki import Pki

PRECINCT_CONF = REPO / "config" / "mosquitto-precinct.conf"


class PrecinctBroker(Broker):
    """mosquitto running the repository's ``config/mosquitto-precinct.conf`` itself.

    Only what cannot be the same here is changed: the listener's port (127.0.0.1), the paths of
    the CA, server certificate, key, ACL and persistence folder, and logging (to our log file,
    debug included). ``user root`` is added because mosquitto started as root drops to user
    ``mosquitto`` before reading its key, which the test PKI does not grant it. Every other
    line — the settings under test — is the shipped file's, verbatim.
    """

    _DROPPED = ("log_dest", "log_type", "log_timestamp", "log_timestamp_format", "pid_file", "user")

    def __init__(self, folder: Path, *, pki: Pki, acl_file: Path, conf: Path = PRECINCT_CONF,
                 mosquitto: str = "mosquitto") -> None:
        super().__init__(folder, pki=pki, acl_file=acl_file, mosquitto=mosquitto, persistence=True)
        self.conf = conf

    def config_text(self) -> str:
        assert self.pki is not None and self.acl_file is not None
        replace = {"listener": f"listener {self.port} {HOST}", "cafile": f"cafile {self.pki.ca.cert}",
                   "certfile": f"certfile {self.pki.server.cert}",
                   "keyfile": f"keyfile {self.pki.server.key}", "acl_file": f"acl_file {self.acl_file}",
                   "persistence_location": f"persistence_location {self.folder}/"}
        lines = ["# written by tests/rig/precinct.py from " + self.conf.name, "user root",
                 "log_dest stderr", "log_timestamp_format %Y-%m-%dT%H:%M:%S"]
        lines += [f"log_type {kind}" for kind in self.log_types]
        found: set[str] = set()
        for line in self.conf.read_text(encoding="utf-8").splitlines():
            key = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
            if key in self._DROPPED:
                continue
            if key in replace:
                found.add(key)
                line = replace[key]
            lines.append(line)
        missing = sorted(set(replace) - found)
        if missing:  # the shipped file lost a setting the precinct needs: say so, do not paper over it
            raise BrokerError(f"{self.conf} has no {', '.join(missing)} line")
        return "\n".join([*lines, *self.extra]) + "\n"
