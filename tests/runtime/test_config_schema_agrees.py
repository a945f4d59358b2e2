"""The JSON Schema (what an editor checks through taplo) and the loader judge a file alike.

A seeded generator writes thousands of trees around the valid one, a mistake or two each: wrong
types, values just in and just out of range, enums, patterns, unknown keys and sections, a
missing identity, mqtts without its files, broker ports. Each is given to both; they must agree.

What JSON Schema cannot say, and so is left to the loader alone (never generated here or
skipped by its message): 5.0 where an integer belongs (JSON has one number type: ``integer``
accepts 5.0), NaN (no JSON value), two GPIO keys on one pin and a quota above the hard limit
(comparisons between two values).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from safehouse.device.core import settings
from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime import config, config_json

REPO = Path(__file__).resolve().parents[2]
VALIDATOR = Draft202012Validator(json.loads((REPO / config_json.SCHEMA_PATH).read_text()))
LOADER_ONLY = ("is already used by", "must not exceed")  # the comparisons between two values
POOL: list[Any] = [0, 1, -1, 5, 27, 28, 100, 9600, 10**7, 0.5, 1.5, -0.5, 1e9, True, False, "", "x", "5",
                   "09:00", "24:00", "9:00", "mqtt://h", "mqtts://h:8883", "mqtt://h:0", "mqtt://h:99999",
                   "K1", "a b", "a" * 64, "a" * 65, "sim", "pi", "info", "hold", "3.1.1", [], [1], [1.5, 2],
                   ["09:00"], ["x"], [True], {}, {"a": 1}, "/abs/p", "rel/p"]
URLS = ["mqtt://h", "mqtt://h:1", "mqtt://h:65535", "mqtt://h:65536", "mqtt://h:0", "mqtt://h:00080",
        "mqtt://h:00000", "mqtt://h:99999", "mqtt://h:123456", "mqtts://h:8883", "mqtt://h:", "mqtt://:1",
        "http://h", "mqtt://h/x", "mqtt://h:1:2", ""]


def _value(rng: random.Random, key: settings.Key) -> Any:
    rule = key.meta.check.schema if isinstance(key.meta.check, settings.Rule) else {}
    roll = rng.random()
    if key.name == "url" and roll < 0.5:
        return rng.choice(URLS)
    if roll < 0.3 and "enum" in rule:
        return rng.choice([*rule["enum"], "nope", 3])
    if roll < 0.6 and "minimum" in rule:
        lo, hi = rule["minimum"], rule["maximum"]
        value = rng.choice([lo, hi, (lo + hi) / 2, lo - 1, hi + 1, lo - 0.001, hi + 0.001])
        return round(value) if key.kind is int else value
    value = rng.choice(POOL)
    return value if key.kind is not int or not isinstance(value, float) else 2.5  # 5.0: see above


def _tree(rng: random.Random) -> dict[str, Any]:
    tree: dict[str, Any] = {"device": {"id": "K1", "precinct": "p", "hardware": "sim", "state_dir": "/tmp/x"}}
    declared = list(config.sections().items())
    for _ in range(rng.choice([0, 1, 1, 2])):
        name, cls = rng.choice(declared)
        table = tree.setdefault(name, {})
        roll = rng.random()
        if not isinstance(table, dict):
            continue
        if roll < 0.02:
            tree[name] = rng.choice([5, "x", [1]])
        elif roll < 0.04:
            table["bogus"] = 1
        elif roll < 0.05:
            tree["bogus"] = {}
        elif roll < 0.07:
            tree["device"].pop(rng.choice(["id", "precinct"]), None)
        else:
            key = rng.choice(settings.keys(cls))
            table[key.name] = _value(rng, key)
    return tree


def _loader_problems(tree: dict[str, Any]) -> list[str]:
    try:
        config.from_tree(tree, base=Path("/tmp"))
    except ConfigError as exc:
        return exc.problems
    return []


@pytest.mark.parametrize("seed", range(4))
def test_the_schema_and_the_loader_agree_on_random_files(seed: int) -> None:
    rng = random.Random(seed)
    disagree = []
    for _ in range(400):
        tree = _tree(rng)
        problems = _loader_problems(tree)
        if problems and all(any(s in p for s in LOADER_ONLY) for p in problems):
            continue
        schema_errors = [e.message for e in VALIDATOR.iter_errors(tree)]
        if bool(problems) != bool(schema_errors):
            disagree.append((tree, problems, schema_errors[:2]))
    assert disagree == [], f"{len(disagree)} disagreements, e.g. {disagree[:3]}"


@pytest.mark.parametrize("url", URLS)
def test_the_schema_judges_a_broker_url_as_the_loader_does(url: str) -> None:
    tree = {"device": {"id": "K1", "precinct": "p"},
            "broker": {"url": url, "ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}}
    assert VALIDATOR.is_valid(tree) != bool(_loader_problems(tree)), url


@pytest.mark.parametrize("missing", ["ca", "cert", "key"])
def test_the_schema_wants_the_tls_files_with_mqtts_as_the_loader_does(missing: str) -> None:
    files = {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}
    for broker in ({"url": "mqtts://h", **files, missing: ""},
                   {"url": "mqtts://h", **{k: v for k, v in files.items() if k != missing}}):
        tree = {"device": {"id": "K1", "precinct": "p"}, "broker": broker}
        assert _loader_problems(tree) == [f"broker.{missing}: required when broker.url is mqtts://"]
        assert not VALIDATOR.is_valid(tree), broker
    assert VALIDATOR.is_valid({"device": {"id": "K1", "precinct": "p"}, "broker": {"url": "mqtt://h"}})
