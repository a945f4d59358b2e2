"""The precinct console's side of the command contract, as a test drives it through a
``Subscriber``: the kiosk's own wall clock from its birth message (what a console's fresh ``ts``
is), and a command sent with its result awaited and checked against the published schema.

``root`` is the kiosk's topic prefix, e.g. ``safehouse/v1/test/SH-TEST-0001/``.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from tests.rig.contract import validate
from tests.rig.subscriber import Subscriber


def online_ts(sub: Subscriber, root: str, timeout: float | None = None) -> str:
    """The ``ts`` of the kiosk's ``online`` status message."""
    [msg] = sub.wait_for(lambda m: m.topic == root + "status" and m.json()["state"] == "online",
                         timeout=timeout)
    return str(msg.json()["ts"])


def send_command(sub: Subscriber, root: str, name: str, body: dict[str, Any] | bytes, *,
                 retain: bool = False, timeout: float | None = None) -> dict[str, Any]:
    """Publish ``cmd/NAME`` (``body`` as JSON unless raw bytes) and return its validated result."""
    sub.clear()
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    sub.publish(root + f"cmd/{name}", payload, retain=retain)
    [msg] = sub.wait_for(lambda m: m.topic == root + f"cmd/{name}/result", timeout=timeout)
    return validate("result", msg.payload)


def heard(sub: Subscriber, root: str, ts: str, timeout: float = 10.0) -> None:
    """Wait until the kiosk answers commands: it publishes ``online`` before its subscription to
    ``cmd/#`` reaches the broker, so a command sent the moment ``online`` is seen can be lost.
    Pings (ids ``heard-N``) until one is answered."""
    deadline = time.monotonic() + timeout
    for n in itertools.count():
        sub.publish(root + "cmd/ping", json.dumps({"id": f"heard-{n}", "ts": ts}).encode())
        try:
            sub.wait_for(lambda m: m.topic == root + "cmd/ping/result", timeout=0.5)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise
