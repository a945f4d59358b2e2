"""Every shared fixture, defined once: short temp dirs, GPIO, the test PKI and brokers.

Helpers (not fixtures) live in ``tests/rig/``, one module per part; this file only hands them to
tests. The PKI is session-scoped because generating it is the slow part (~0.2 s) and tests only
read it; brokers are per test because tests stop, kill and restart them.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from tests.rig.availability import require_tool
from tests.rig.blackhole import Blackhole
from tests.rig.broker import ACL_KIOSKS, CONSOLE_USER, PKI_CLIENTS, Broker, mosquitto_path, write_acl
from tests.rig.pki import Pki, make_pki
from tests.rig.serial_pty import SerialRig

if TYPE_CHECKING:
    from tests.rig.picamera2_double import Picamera2Double

# Tests whose meaning depends on the local hour or the time zone (beacon dimming, the local day of
# the daily counts, roll-call times). `make test` reruns them under a night-time and a day-time TZ.
LOCAL_TIME_TESTS = (
    "tests/drivers/test_lightbox.py",
    "tests/services/test_stats.py",
    "tests/cli/test_stats_cli.py",
    "tests/core/test_keypad_core.py",
    "tests/core/test_sim_clock.py",
    "tests/runtime/test_daemon_inprocess.py::test_the_idle_beacon_dims_by_the_daemons_clock_not_the_machines",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(LOCAL_TIME_TESTS):
            item.add_marker(pytest.mark.local_time)


def _temp_dir(prefix: str) -> Path:
    """Short /tmp paths: tracebacks stay readable and Unix socket paths stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temp dir with a short path: Unix socket paths must stay under 108 bytes."""
    path = _temp_dir("sh-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    """GPIO: gpiozero's own MockFactory with PWM-capable pins, one per test."""
    pin_factory = MockFactory(pin_class=MockPWMPin)
    yield pin_factory
    pin_factory.close()


@pytest.fixture
def serial_rig(short_dir: Path) -> Iterator[SerialRig]:
    """A plugged-in serial cable (a socat PTY pair) in ``short_dir/tty``: the firmware opens
    ``serial_rig.kiosk``, the test types on ``serial_rig.device``; socat missing fails in CI."""
    (short_dir / "tty").mkdir()
    with SerialRig(short_dir / "tty") as cable:
        yield cable


@pytest.fixture
def picamera2() -> Iterator[Picamera2Double]:
    """``import picamera2`` gives the test double (tests/rig/picamera2_double.py) until the test ends.
    Imported late: only camera tests pay for Pillow."""
    from tests.rig.picamera2_double import installed

    with installed() as double:
        yield double


@pytest.fixture
def portaudio() -> ModuleType:
    """sounddevice, loaded under the rig's fake microphone (tests/rig/audio.py); without PortAudio
    the test skips here and fails in CI. Imported late: only audio tests pay for numpy."""
    from tests.rig import audio

    return audio.sounddevice()


@pytest.fixture(scope="session")
def pki() -> Iterator[Pki]:
    """A CA, a 127.0.0.1 server cert, clients SH-A, SH-B and precinct-console, plus bad clients."""
    openssl = require_tool("openssl")
    folder = _temp_dir("sh-pki-")
    try:
        yield make_pki(folder, clients=PKI_CLIENTS, openssl=openssl)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def mqtt_dir() -> Iterator[Path]:
    """A per-test folder for broker config, log and ACL."""
    folder = _temp_dir("sh-mq-")
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
