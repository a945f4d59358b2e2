"""pytest fixtures for MQTT tests: one test PKI per session, one fresh mosquitto per test.

``tests/conftest.py`` imports them (pytest only collects fixtures from conftest or the test
module itself)::

    from tests.mqtt_fixtures import acl_broker, blackhole, broker, mqtt_dir, pki, tls_broker  # noqa: F401

The PKI is session-scoped because generating it is the slow part (~0.2 s) and tests only read
it; brokers are per test because tests stop, kill and restart them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehouse.services.acl import Kiosk
from tests.mqtt_rig import Blackhole, Broker, write_acl
from tests.pki import Pki, make_pki

__all__ = ["acl_broker", "blackhole", "broker", "mqtt_dir", "pki", "tls_broker"]  # the fixtures

CONSOLE_USER = "precinct-console"
# The ACL broker's world: two kiosks of precinct p1 in alliance a1, and the precinct console.
ACL_KIOSKS = (Kiosk("SH-A", "p1", "a1"), Kiosk("SH-B", "p1", "a1"))
PKI_CLIENTS = ("SH-A", "SH-B", CONSOLE_USER)


def require_tool(name: str) -> str:
    """``tests.conftest.require_tool`` (fail in CI, skip elsewhere), imported late: conftest imports us."""
    from tests.conftest import require_tool as require

    return require(name)


def mosquitto_path() -> str:
    """mosquitto lives in /usr/sbin, which a non-root user's PATH lacks on Debian: look there too."""
    sbin = f"{os.defpath}:/usr/sbin:/usr/local/sbin"
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path=sbin)
    return found or require_tool("mosquitto")  # absent: fails in CI, skips elsewhere


def _short_dir(prefix: str) -> Path:
    """Short /tmp paths: tracebacks stay readable and Unix socket paths stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture(scope="session")
def pki() -> Iterator[Pki]:
    """A CA, a 127.0.0.1 server cert, clients SH-A, SH-B and precinct-console, plus bad clients."""
    openssl = require_tool("openssl")
    folder = _short_dir("sh-pki-")
    try:
        yield make_pki(folder, clients=PKI_CLIENTS, openssl=openssl)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mqtt_dir() -> Iterator[Path]:
    """A per-test folder for broker config, log and ACL."""
    folder = _short_dir("sh-mq-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def broker(mqtt_dir: Path) -> Iterator[Broker]:
    """A running plain broker (anonymous clients allowed) on a free 127.0.0.1 port."""
    with Broker(mqtt_dir / "plain", mosquitto=mosquitto_path()) as running:
        yield running


@pytest.fixture
def tls_broker(mqtt_dir: Path, pki: Pki) -> Iterator[Broker]:
    """A running broker that requires a client certificate of ``pki.ca``; CN = username."""
    with Broker(mqtt_dir / "tls", pki=pki, mosquitto=mosquitto_path()) as running:
        yield running


@pytest.fixture
def acl_broker(mqtt_dir: Path, pki: Pki) -> Iterator[Broker]:
    """The TLS broker with the repository's ACL template rendered for ``ACL_KIOSKS``."""
    acl = write_acl(mqtt_dir, ACL_KIOSKS, CONSOLE_USER)
    with Broker(mqtt_dir / "acl", pki=pki, acl_file=acl, mosquitto=mosquitto_path()) as running:
        yield running


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    """A 127.0.0.1 port that accepts TCP and never answers."""
    with Blackhole() as hole:
        yield hole
