"""Load the kiosk's TOML config into frozen dataclasses, or fail with every problem at once.

Nothing downstream sees a dict: drivers and services get typed, immutable settings, so a
typo in a key can only ever surface here, at start-up, before any pin or socket is touched.
Every key is declared once, in the settings dataclass of the part that uses it; the sections
are registered in ``parts.Sections``. This module only walks them (device.core.settings).
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import time
from pathlib import Path
from typing import Any

from safehouse.device.core import settings
from safehouse.device.core.errors import ConfigError
from safehouse.device.runtime.parts import Sections, sections

DEFAULT_PATH = Path("/etc/safehouse/config.toml")
ENV_VAR = "SAFEHOUSE_CONFIG"
EX_CONFIG = 78  # sysexits.h: configuration error

# The order problems are listed in, kept from the single checker the sections replaced: a
# technician compares the whole message with the runbook and with the last one. ``Sections``
# keeps the order `config check` prints the effective config in; a section added later is
# checked after these. The checks between keys come last, in the order of _CROSS_ORDER.
_PROBLEM_ORDER = ("device", "broker", "outbox", "telemetry", "alliance", "camera", "microphone",
                  "evidence", "commands", "control", "gpio", "light", "button", "alarm", "keypad",
                  "buzzer", "logging")
_CROSS_ORDER = ("gpio", "evidence", "broker")

@dataclass(frozen=True)
class Config(Sections):
    """Every section (``config.camera.enabled``), and the file it came from."""

    source: str = "<config>"

    def as_dict(self) -> dict[str, Any]:
        """The effective config as plain TOML-able values (for `config check` and digests)."""
        out = asdict(self)
        out.pop("source")
        if out["broker"]["password"]:
            out["broker"]["password"] = "********"  # never echo a secret to a terminal or log
        for section in out.values():
            for name, value in list(section.items()):
                if isinstance(value, Path):
                    section[name] = str(value)
                elif isinstance(value, tuple):
                    section[name] = list(value)
                elif isinstance(value, time):
                    section[name] = value.strftime("%H:%M")
                elif value is None:
                    del section[name]
        return out


def resolve_path(explicit: str | os.PathLike[str] | None) -> Path:
    """--config wins, then $SAFEHOUSE_CONFIG, then /etc/safehouse/config.toml."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else DEFAULT_PATH


def load(path: str | os.PathLike[str] | None = None, *, hardware: str | None = None) -> Config:
    """Read and validate a config file; ``hardware`` overrides device.hardware (``run --sim``)."""
    file = resolve_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:  # TOML is UTF-8 by definition
        problem = f"not valid TOML: not UTF-8 text ({exc.reason} at byte {exc.start})"
        raise ConfigError(str(file), [problem]) from exc
    try:
        tree = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(file), [f"not valid TOML: {exc}"]) from exc
    device = tree.setdefault("device", {})
    if hardware is not None and isinstance(device, dict):  # not a table: reported as such
        device["hardware"] = hardware
    return from_tree(tree, source=str(file), base=file.parent)


def problem_order(first: tuple[str, ...] = _PROBLEM_ORDER) -> list[str]:
    """Every declared section, those of ``first`` first (in that order), the others as declared."""
    declared = list(sections())
    return sorted(declared, key=lambda name: first.index(name) if name in first else len(first))


def check_tree(tree: Mapping[str, Any], base: Path) -> tuple[dict[str, Any], list[str]]:
    """Every section read from ``tree`` (defaults filled in), and every problem found.

    Problems of single keys come first, section by section, then those between keys.
    """
    declared = sections()
    order = problem_order()
    problems = [f"{name}: unknown section (known: {', '.join(order)})"
                for name in tree if name not in declared]
    values = {}
    for name in order:
        values[name], found = settings.read(declared[name], name, tree.get(name, {}), base)
        problems += found
    for name in problem_order(_CROSS_ORDER):
        problems += settings.cross_check(name, values[name])
    return values, problems


def from_tree(tree: dict[str, Any], *, source: str = "<config>", base: Path | None = None) -> Config:
    """Validate a parsed tree; relative paths are taken from the config file's folder."""
    values, problems = check_tree(tree, base or Path.cwd())
    if problems:
        raise ConfigError(source, problems)
    return Config(source=source, **values)


def to_toml(values: dict[str, Any]) -> str:
    """Render the effective config (flat tables of scalars) back as TOML for humans."""
    lines: list[str] = []
    for section, keys in values.items():
        lines.append(f"[{section}]")
        for name, value in keys.items():
            if isinstance(value, bool):
                rendered = "true" if value else "false"
            elif isinstance(value, list):
                rendered = "[" + ", ".join(repr(v) for v in value) + "]"
            elif isinstance(value, int | float):
                rendered = repr(value)
            else:  # a TOML basic string is a JSON string, less DEL (0x7f), which TOML forbids raw
                rendered = json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")
            lines.append(f"{name} = {rendered}")
        lines.append("")
    return "\n".join(lines)
