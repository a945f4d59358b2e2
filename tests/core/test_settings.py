"""device.core.settings: one dataclass declares a section; checking and JSON Schema follow from it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from pathlib import Path

import pytest

from safehouse.device.core.settings import (
    HHMM,
    REQUIRED,
    as_path,
    as_path_or,
    as_time,
    cross_check,
    in_range,
    json_schema,
    matches,
    one_of,
    read,
    setting,
)


@dataclass(frozen=True)
class Modem:
    """[modem]: a serial SMS modem (a worked example, not a kiosk section)."""

    port: str = setting(REQUIRED, "serial port of the modem")
    baud: int = setting(115200, "baud rate", one_of(9600, 115200))
    retries: int = setting(3, "sends tried before giving up", in_range(0, 10))
    timeout: float = setting(5.0, "seconds to wait for OK", in_range(0.5, 60.0))
    quiet_from: time = setting("22:00", "no SMS after (HH:MM)", matches(HHMM, "HH:MM"), convert=as_time)
    log: Path = setting("modem.log", "log file", convert=as_path)
    book: Path = setting("", "phone book ('' = book.toml beside the config)", convert=as_path_or("book.toml"))
    numbers: tuple[str, ...] = setting((), "who gets the SMS")
    pin: int | None = setting(None, "SIM PIN (absent = none)", in_range(0, 9999))

    def cross_problems(self, section: str) -> list[str]:
        return [f"{section}.retries: must be 0 at 9600 baud"] if self.baud == 9600 and self.retries else []


def test_defaults_are_the_converted_toml_defaults() -> None:
    modem = Modem(port="/dev/ttyUSB0")
    assert modem.quiet_from == time(22, 0) and modem.log == Path("modem.log") and modem.pin is None


def test_a_good_table_is_converted_against_the_config_folder(tmp_path: Path) -> None:
    modem, problems = read(Modem, "modem", {"port": "/dev/ttyS0", "timeout": 2, "numbers": ["110"]}, tmp_path)
    assert problems == []
    assert modem.timeout == 2.0 and isinstance(modem.timeout, float)
    assert modem.log == tmp_path / "modem.log" and modem.book == tmp_path / "book.toml"
    assert modem.numbers == ("110",)


def test_every_problem_is_named_with_its_key_path() -> None:
    _, problems = read(Modem, "modem", {"baud": 1200, "retries": True, "quiet_from": "24:00",
                                        "numbers": [1], "colour": "red"}, None)
    assert problems == [
        "modem.colour: unknown key (known: port, baud, retries, timeout, quiet_from, log, book, "
        "numbers, pin)",
        "modem.port: required, missing (serial port of the modem)",
        "modem.baud: must be one of 9600, 115200, got 1200",
        "modem.retries: must be an integer, got True",
        "modem.quiet_from: must be HH:MM, got '24:00'",
        "modem.numbers: must be a list of strings, got [1]",
    ]
    assert read(Modem, "modem", 5, None)[1][0] == "modem: must be a table ([modem])"


def test_checks_between_keys_come_from_the_section_itself() -> None:
    modem, problems = read(Modem, "modem", {"port": "/dev/ttyS0", "baud": 9600}, None)
    assert problems == [] and cross_check("modem", modem) == ["modem.retries: must be 0 at 9600 baud"]


def test_the_json_schema_says_what_the_checker_checks() -> None:
    schema = json_schema(Modem)
    assert schema["additionalProperties"] is False and schema["required"] == ["port"]
    assert schema["description"].startswith("[modem]: a serial SMS modem")
    props = schema["properties"]
    assert props["baud"] == {"description": "baud rate", "type": "integer", "default": 115200,
                             "enum": [9600, 115200]}
    assert props["retries"]["minimum"] == 0 and props["retries"]["maximum"] == 10
    assert props["quiet_from"]["type"] == "string" and props["quiet_from"]["pattern"] == HHMM.pattern
    assert props["numbers"] == {"description": "who gets the SMS", "type": "array",
                                "items": {"type": "string"}, "default": []}
    assert "default" not in props["pin"] and props["pin"]["type"] == "integer"


def test_a_field_not_declared_with_setting_is_refused() -> None:
    @dataclass(frozen=True)
    class Sloppy:
        level: int = 3

    with pytest.raises(TypeError, match="declare it with setting"):
        read(Sloppy, "sloppy", {}, None)
