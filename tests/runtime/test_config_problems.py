"""The config's problem list, as a technician reads it: the same lines in the same order as before
each part declared its own section, and no value slipping through with a trailing newline.

The whole message is what a technician compares with the runbook (and with the last time), so a
file with mistakes in many sections must list them exactly as the single checker of old did:
key by key in its section order, then the checks between keys (pins, evidence, broker).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime import config

MANY_MISTAKES = '''\
[device]
precinct = "p 1"
hardware = "sym"
state_dir = 5
[bogus]
x = 1
[broker]
url = "mqtts://host:70000"
keepalive = "10"
window = 3.0
protocol = 5
colour = "red"
[gpio]
red = 17
blue = 17
button = true
buzzer = 99
status_led = 2.0
tamper = 17
[light]
night_from = "25:00"
night_until = "7:00"
day_brightness = 1.5
[keypad]
rollcall_times = ["09:00", 900]
baud = 9601
lockout_after = true
[camera]
offsets = [0, "1", true]
width = [1280]
[evidence]
quota_mb = 2000
hard_limit_mb = 1000
[alarm]
ack_timeout = {x = 1}
[logging]
level = "verbose"
[buzzer]
enabled = "yes"
'''

# As `safehouse config check` printed it before the split (commit 1d4116e), "known" lists elided.
EXPECTED = '''\
  - bogus: unknown section (known: ...)
  - device.id: required, missing (kiosk identity, also the MQTT client id)
  - device.precinct: must be 1-64 characters of A-Z a-z 0-9 _ -, got 'p 1'
  - device.hardware: must be one of 'pi', 'sim', got 'sym'
  - device.state_dir: must be a string, got 5
  - broker.colour: unknown key (known: ...)
  - broker.url: port must be 1-65535, got 70000
  - broker.keepalive: must be an integer, got '10'
  - broker.protocol: must be a string, got 5
  - broker.window: must be an integer, got 3.0
  - camera.offsets: must be a list of numbers, got [0, '1', True]
  - camera.width: must be an integer, got [1280]
  - gpio.button: must be an integer, got True
  - gpio.buzzer: must be between 0 and 27, got 99
  - gpio.status_led: must be an integer, got 2.0
  - light.day_brightness: must be between 0.0 and 1.0, got 1.5
  - light.night_from: must be HH:MM, got '25:00'
  - light.night_until: must be HH:MM, got '7:00'
  - alarm.ack_timeout: must be a number, got {'x': 1}
  - keypad.baud: must be one of 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, got 9601
  - keypad.lockout_after: must be an integer, got True
  - keypad.rollcall_times: must be a list of strings, got ['09:00', 900]
  - buzzer.enabled: must be true or false, got 'yes'
  - logging.level: must be one of 'debug', 'info', 'warning', 'error', got 'verbose'
  - gpio.blue: pin 17 is already used by gpio.red
  - gpio.tamper: pin 17 is already used by gpio.red
  - evidence.quota_mb: must not exceed evidence.hard_limit_mb
  - broker.ca: required when broker.url is mqtts://
  - broker.cert: required when broker.url is mqtts://
  - broker.key: required when broker.url is mqtts://
'''


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "safehouse.device.cli.main", *args],
                          capture_output=True, text=True, timeout=30, check=False)


def _elide_known(line: str) -> str:
    return line.split(" (known: ")[0] + " (known: ...)" if " (known: " in line else line


def test_config_check_lists_every_problem_in_the_order_it_always_did(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text(MANY_MISTAKES)
    res = _cli("config", "check", str(path))
    assert res.returncode == 78
    lines = res.stderr.splitlines()
    assert lines[0] == f"safehouse: {path}: 30 problem(s) in the configuration:"
    assert "\n".join(_elide_known(line) for line in lines[1:]) + "\n" == EXPECTED
    assert not (tmp_path / "5").exists()


def test_a_section_added_later_is_checked_after_the_known_ones() -> None:
    """The order is kept for the sections that existed; nothing declared is left unchecked."""
    declared = set(config.sections())
    order = config.problem_order()
    assert set(order) == declared and len(order) == len(declared)


BASE: dict[str, Any] = {"device": {"id": "K1", "precinct": "p", "hardware": "sim"}}


@pytest.mark.parametrize(("section", "key", "value"), [
    ("device", "id", "K1\n"),
    ("device", "precinct", "p\n"),
    ("device", "alliance", "a\n"),
    ("light", "night_from", "19:00\n"),
    ("keypad", "rollcall_times", ["09:00\n"]),
    ("broker", "url", "mqtt://broker\n"),
])
def test_a_trailing_newline_is_not_part_of_a_valid_value(section: str, key: str, value: Any) -> None:
    """Python's ``$`` matches before a final newline; the schema's (taplo's) does not, nor may we:
    ``K1\\n`` would become the MQTT client id and a topic level."""
    tree = {**BASE, section: {**BASE.get(section, {}), key: value}}
    with pytest.raises(ConfigError) as info:
        config.from_tree(tree)
    assert [p.split(":")[0] for p in info.value.problems] == [f"{section}.{key}"]


@pytest.mark.parametrize("device", ["5", "[1]", '"sim"'])
def test_run_sim_with_a_device_that_is_not_a_table_is_a_config_error(tmp_path: Path, device: str) -> None:
    """`run --sim` sets device.hardware; a [device] that is not a table is reported, not a TypeError."""
    path = tmp_path / "c.toml"
    path.write_text(f"device = {device}\n")
    with pytest.raises(ConfigError) as info:
        config.load(path, hardware="sim")
    assert info.value.problems[0] == "device: must be a table ([device])"
    res = _cli("--config", str(path), "run", "--sim")
    assert res.returncode == 78 and "Traceback" not in res.stderr


def test_config_check_prints_toml_that_reads_back_as_the_same_values(tmp_path: Path) -> None:
    """Free-text keys may hold a newline, a tab, a quote or a backslash; the printout stays TOML."""
    import tomllib

    path = tmp_path / "c.toml"
    path.write_text('[device]\nid = "K1"\nprecinct = "p"\n[broker]\nusername = "a\\nb\\tc\\u007f\\u0001"\n'
                    '[keypad]\nport = "C:\\\\x\\"y"\nrollcall_times = ["09:00", "10:00"]\n'
                    "[microphone]\ndevice = \"it's\"\n")
    res = _cli("config", "check", str(path))
    assert res.returncode == 0, res.stderr
    printed = tomllib.loads(res.stdout)
    assert printed["broker"]["username"] == "a\nb\tc\x7f\x01"
    assert printed["keypad"]["port"] == 'C:\\x"y'
    assert printed["keypad"]["rollcall_times"] == ["09:00", "10:00"]
    assert printed["microphone"]["device"] == "it's"
    assert 'rollcall_times = ["09:00", "10:00"]' not in res.stdout  # lists print as they always did


def test_a_file_that_is_not_utf8_is_a_config_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[device]\nid = "K\xff"\nprecinct = "p"\n')
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert info.value.problems == ["not valid TOML: not UTF-8 text (invalid start byte at byte 16)"]
    res = _cli("config", "check", str(path))
    assert res.returncode == 78 and "Traceback" not in res.stderr


def test_an_integer_too_large_for_a_number_is_out_of_range_not_a_traceback(tmp_path: Path) -> None:
    """tomllib reads integers of any size; float() of one past 1e308 raised OverflowError."""
    huge = "1" + "0" * 400
    tree = {**BASE, "alarm": {"ack_timeout": int(huge)}, "camera": {"offsets": [0, int(huge)]}}
    with pytest.raises(ConfigError) as info:
        config.from_tree(tree)
    assert [p.split(":")[0] for p in info.value.problems] == ["camera.offsets", "alarm.ack_timeout"]
    assert info.value.problems[1].startswith("alarm.ack_timeout: must be between 1.0 and 3600.0, got 1000")


@pytest.mark.parametrize(("section", "key"), [("device", "state_dir"), ("control", "socket"),
                                              ("broker", "ca"), ("keypad", "volunteers")])
@pytest.mark.parametrize("value", ["rel\x00ative", "/abs\x00olute"])
def test_a_path_with_a_nul_character_is_a_problem_not_a_traceback(section: str, key: str, value: str) -> None:
    """TOML can write "\\u0000"; resolving such a path raised ValueError (embedded null byte)."""
    tree = {**BASE, section: {**BASE.get(section, {}), key: value}}
    with pytest.raises(ConfigError) as info:
        config.from_tree(tree, base=Path("/tmp"))
    assert info.value.problems == [f"{section}.{key}: a path cannot hold a NUL character, got {value!r}"]
