"""Shared fixtures: kiosk configs in short temp dirs, and the CI rule that nothing is skipped."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


# Tests whose meaning depends on the local hour or the time zone (beacon dimming, the local day of
# the daily counts, roll-call times). `make test` reruns them under a night-time and a day-time TZ.
LOCAL_TIME_TESTS = (
    "tests/drivers/test_lightbox.py",
    "tests/services/test_stats.py",
    "tests/core/test_keypad_core.py",
    "tests/core/test_sim_clock.py",
    "tests/runtime/test_daemon_inprocess.py::test_the_idle_beacon_dims_by_the_daemons_clock_not_the_machines",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.nodeid.startswith(LOCAL_TIME_TESTS):
            item.add_marker(pytest.mark.local_time)


def unavailable(message: str) -> NoReturn:
    """Something real the test needs is missing: in CI that fails the test, elsewhere it skips."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Path of a tool the test needs (see ``unavailable``)."""
    path = shutil.which(name)
    if path:
        return path
    unavailable(f"{name} is not installed (make test installs it: see APT_PACKAGES in the Makefile)")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temp dir with a short path: Unix socket paths must stay under 108 bytes."""
    path = Path(tempfile.mkdtemp(prefix="sh-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_config(folder: Path, extra: str = "", *, capture: bool = False, alarm: str = "",
                 staffed: bool = True, **device: str) -> Path:
    """A minimal sim kiosk config whose state and socket live in ``folder``.

    Evidence capture (camera, microphone) is off unless ``capture``: most tests are about
    alarms and links, and a 20 s audio clip per alarm would only slow them down. ``staffed``
    turns off the at-once escalation of alarms while nobody is on duty (keypad tests check
    in for real); ``alarm`` adds lines to the [alarm] table.
    """
    dev = {"id": "SH-TEST-0001", "precinct": "test", "hardware": "sim", **device}
    lines = ["[device]"] + [f'{k} = "{v}"' for k, v in dev.items()]
    lines += [f'state_dir = "{folder / "state"}"', "", "[control]", f'socket = "{folder / "ctl.sock"}"', ""]
    if not capture:
        lines += ["[camera]", "enabled = false", "[microphone]", "enabled = false", ""]
    lines += ["[alarm]", f"escalate_unstaffed = {'false' if staffed else 'true'}", alarm, ""]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


from tests.mqtt_fixtures import acl_broker, blackhole, broker, mqtt_dir, pki, tls_broker  # noqa: E402, F401
