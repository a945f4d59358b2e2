"""Config: every problem reported at once with its key path; exit 78 from the CLI; nothing started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime import config

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "safehouse.device.cli.main", *args],
                          capture_output=True, text=True, timeout=30, check=False)


def config_check(tmp_path: Path, toml: str) -> subprocess.CompletedProcess[str]:
    """`safehouse config check` of a config.toml holding ``toml``, as a technician runs it."""
    path = tmp_path / "c.toml"
    path.write_text(toml)
    return cli("config", "check", str(path))


def test_shipped_configs_are_valid() -> None:
    sim = config.load(REPO / "config" / "sim.toml")
    assert sim.device.hardware == "sim"
    assert sim.device.state_dir == REPO / ".state"  # relative to the config file's folder
    example = config.load(REPO / "config" / "config.example.toml")
    assert example.gpio.button == 22 and example.alarm.ack_timeout == 60.0


def test_defaults_fill_in_everything_but_identity(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[device]\nid = "K1"\nprecinct = "p1"\n')
    cfg = config.load(path)
    assert cfg.broker.url == "" and cfg.broker.keepalive == 10
    assert cfg.gpio.tamper is None and cfg.button.debounce_ms == 20


def test_every_problem_is_listed_with_its_key_path(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[device]\nid = "has space"\nprecinct = "p"\ncolour = "red"\nhardware = "arduino"\n'
        '[gpio]\nred = 17\nblue = 17\nbutton = "22"\n'
        '[alarm]\nack_timeout = -1\n'
        '[broker]\nurl = "mqtts://broker.example:8883"\n'
        '[nonsense]\nx = 1\n'
    )
    with pytest.raises(ConfigError) as info:
        config.load(path)
    problems = "\n".join(info.value.problems)
    for needle in ("device.id:", "device.colour: unknown key", "device.hardware:",
                   "gpio.blue: pin 17 is already used by gpio.red", "gpio.button: must be an integer",
                   "alarm.ack_timeout: must be between", "broker.ca: required when broker.url is mqtts",
                   "nonsense: unknown section"):
        assert needle in problems, needle
    assert len(info.value.problems) == 10  # the 8 above + broker.cert and broker.key


def test_integers_are_accepted_where_numbers_are_expected(tmp_path: Path) -> None:
    cfg = config.from_tree({"device": {"id": "a", "precinct": "b"}, "button": {"hold_seconds": 3}})
    assert cfg.button.hold_seconds == 3.0


def test_an_odd_camera_size_is_refused_by_config_check_not_at_start(tmp_path: Path) -> None:
    """picamera2 refuses odd sizes: a config that passed `config check` used to stop the kiosk."""
    res = config_check(tmp_path, '[device]\nid = "K1"\nprecinct = "p"\n[camera]\nwidth = 641\nheight = 481\n')
    assert res.returncode == 78
    assert "camera.width: must be even, got 641" in res.stderr
    assert "camera.height: must be even, got 481" in res.stderr


def test_config_check_exits_78_naming_an_unknown_key_and_a_duplicated_pin(tmp_path: Path) -> None:
    res = config_check(tmp_path, '[device]\nid = "K1"\nprecinct = "p"\nwhatever = 1\n[gpio]\nbuzzer = 17\n')
    assert res.returncode == 78
    assert "device.whatever: unknown key" in res.stderr
    assert "gpio.buzzer: pin 17 is already used by gpio.red" in res.stderr
    assert res.stdout == ""


def test_config_check_prints_the_effective_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[device]\nid = "K1"\nprecinct = "p"\n')
    res = cli("config", "check", str(path))
    assert res.returncode == 0, res.stderr
    assert 'id = "K1"' in res.stdout and "ack_timeout = 60.0" in res.stdout
    assert config.from_tree(__import__("tomllib").loads(res.stdout.split("\n", 2)[2])).device.id == "K1"


def test_unreadable_and_malformed_files_are_config_errors(tmp_path: Path) -> None:
    res = cli("--config", str(tmp_path / "missing.toml"), "status")
    assert res.returncode == 78 and "cannot read the file" in res.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[device\n")
    res = cli("config", "check", str(bad))
    assert res.returncode == 78 and "not valid TOML" in res.stderr


def test_run_with_a_bad_config_starts_nothing(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    sock = tmp_path / "ctl.sock"
    path.write_text(f'[device]\nid = "K1"\nprecinct = "p"\nhardware = "sim"\nstate_dir = "{tmp_path}/st"\n'
                    f'[control]\nsocket = "{sock}"\n[gpio]\nred = 99\n')
    res = cli("--config", str(path), "run")
    assert res.returncode == 78 and "gpio.red" in res.stderr
    assert not sock.exists() and not (tmp_path / "st").exists()
