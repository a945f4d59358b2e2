"""Config declared once: the checked-in JSON Schema, the checker and the README come from one place.

Every key is a field of its part's settings dataclass (device.core.settings); the loader, the
JSON Schema editors use (config/schemas/config.schema.json, via taplo) and the README's
reference must all name the same keys, and the schema must judge files as the loader does.
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from safehouse.device.core import settings
from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime import config, config_json
from safehouse.device.runtime.hardware import Hardware
from safehouse.device.runtime.parts import HARDWARE, Sections, sections

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / config_json.SCHEMA_PATH
EXAMPLES = sorted((REPO / "config").glob("*.toml"))
DECLARED = {f"{name}.{f.name}" for name, cls in sections().items() for f in dataclasses.fields(cls)}


def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_errors(tree: dict[str, Any]) -> list[str]:
    return [e.message for e in _validator().iter_errors(tree)]


def test_the_checked_in_schema_is_the_one_the_declaration_writes() -> None:
    assert SCHEMA_FILE.read_text() == config_json.render(), (
        "config/schemas/config.schema.json is stale; regenerate it from the repo root with: "
        ".venv/bin/python -m safehouse.device.runtime.config_json config/schemas/config.schema.json")


def test_the_schema_names_exactly_the_declared_keys() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    named = {f"{section}.{key}" for section, table in schema["properties"].items()
             for key in table["properties"]}
    assert named == DECLARED
    assert list(schema["properties"]) == [f.name for f in dataclasses.fields(Sections)]
    assert schema["additionalProperties"] is False
    assert all(table["additionalProperties"] is False for table in schema["properties"].values())


def test_every_key_is_declared_with_its_doc_and_default_in_one_place() -> None:
    for name, cls in sections().items():
        for key in settings.keys(cls):  # raises for a field not made with setting()
            assert key.meta.doc, f"{name}.{key.name} has no doc"
    assert "config_schema.py" not in {p.name for p in (REPO / "device" / "runtime").iterdir()}


def test_the_shipped_configs_are_found() -> None:
    """Apart from the test below: with no file, its parametrize would be an empty set (a skip)."""
    assert {"sim.toml", "config.example.toml"} <= {p.name for p in EXAMPLES}, "example configs missing"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_schema_accepts_the_shipped_configs(path: Path) -> None:
    assert _schema_errors(tomllib.loads(path.read_text())) == []
    config.load(path)  # and so does the loader


@pytest.mark.parametrize(("tree", "path"), [
    ({"device": {"id": "K1", "precinct": "p", "colour": "red"}}, "device.colour"),
    ({"device": {"id": "K1", "precinct": "p"}, "gpoi": {"red": 5}}, "gpoi"),
    ({"device": {"id": "K1"}}, "device.precinct"),
    ({"device": {"id": "K1", "precinct": "p"}, "gpio": {"red": 99}}, "gpio.red"),
    ({"device": {"id": "K1", "precinct": "p"}, "gpio": {"button": "22"}}, "gpio.button"),
    ({"device": {"id": "K1", "precinct": "p", "hardware": "arduino"}}, "device.hardware"),
    ({"device": {"id": "has space", "precinct": "p"}}, "device.id"),
    ({"device": {"id": "K1", "precinct": "p"}, "light": {"night_from": "25:00"}}, "light.night_from"),
    ({"device": {"id": "K1", "precinct": "p"}, "keypad": {"rollcall_times": ["9:00"]}},
     "keypad.rollcall_times"),
    ({"device": {"id": "K1", "precinct": "p"}, "camera": {"offsets": [0, 61]}}, "camera.offsets"),
    ({"device": {"id": "K1", "precinct": "p"}, "broker": {"url": "http://x"}}, "broker.url"),
])
def test_the_schema_and_the_loader_both_refuse_a_mistake(tree: dict[str, Any], path: str) -> None:
    assert _schema_errors(tree), f"the schema accepts a bad {path}"
    with pytest.raises(ConfigError) as info:
        config.from_tree(tree)
    assert any(p.startswith(path) for p in info.value.problems), info.value.problems


def test_the_defaults_satisfy_the_schema_they_are_written_into() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    tree = {section: {key: prop["default"] for key, prop in table["properties"].items() if "default" in prop}
            for section, table in schema["properties"].items()}
    tree["device"].update(id="K1", precinct="p")
    assert _schema_errors(tree) == []
    assert config.from_tree(tree).keypad.lockout_after == 5


def test_the_readme_reference_names_every_key() -> None:
    text = (REPO / "README.md").read_text()
    table = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    named: set[str] = set()
    for line in table.splitlines():
        if not line.startswith("| `"):
            continue
        section = ""
        for token in re.findall(r"`([^`]+)`", line.split("|")[1]):
            if token.startswith(".") and section:  # `buzzer.click`, `.ok`: the same section
                named.add(section + token)
            elif "." in token:
                named.add(token)
                section = token.split(".")[0]
    assert DECLARED - named == set(), "README's configuration reference lacks these keys"
    assert named - DECLARED == set(), "README's configuration reference names keys that do not exist"


def test_every_hardware_part_is_exposed_or_wired() -> None:
    """A part exposed on Hardware is declared there with its type (mypy checks its users);
    a new part that is only wired needs no change here."""
    attributes = [part.attribute for part in HARDWARE if part.attribute]
    assert attributes == list(Hardware.__annotations__), "declare each exposed part on Hardware"
    assert {"light", "status_led", "button", "buzzer", "keypad"} <= set(attributes)
    assert all(part.attribute or part.wire for part in HARDWARE)


def test_the_full_example_config_names_every_key_with_its_default() -> None:
    """README calls config/config.example.toml "a full example with every default": a key added
    to a part's settings must appear there too (optional pins as a commented line)."""
    example_text = (REPO / "config" / "config.example.toml").read_text()
    example = tomllib.loads(example_text)
    schema = json.loads((REPO / "config" / "schemas" / "config.schema.json").read_text())
    missing, differ = [], []
    for section, table in schema["properties"].items():
        for key, spec in table.get("properties", {}).items():
            if key not in example.get(section, {}):
                if f"# {key} = " not in example_text:
                    missing.append(f"{section}.{key}")
            elif "default" in spec and example[section][key] != spec["default"]:
                differ.append(f"{section}.{key}: {example[section][key]!r} != default {spec['default']!r}")
    assert missing == [] and differ == []
