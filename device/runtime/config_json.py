"""The JSON Schema of config.toml, written from the declaration (parts.Sections), never by hand.

``config/schemas/config.schema.json`` is checked in so that editors validate a kiosk's config
as it is typed (taplo / Even Better TOML: a ``#:schema ./schemas/config.schema.json`` first
line, or the repo's ``taplo.toml``); tests/runtime/test_config_schema.py fails when it is stale.
Regenerate it with::

    .venv/bin/python -m safehouse.device.runtime.config_json config/schemas/config.schema.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from safehouse.device.core import settings
from safehouse.device.runtime.parts import sections

SCHEMA_PATH = Path("config/schemas/config.schema.json")  # from the repo's root
SCHEMA_ID = "https://safehouse.example/schemas/v1/config.schema.json"


def schema() -> dict[str, Any]:
    """The whole file's schema: one table per section, no other sections, required ones required."""
    props = {name: settings.json_schema(cls) for name, cls in sections().items()}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Safe House kiosk config (/etc/safehouse/config.toml)",
        "description": "Generated from the settings dataclasses (device/runtime/parts.py); "
                       "do not edit: python -m safehouse.device.runtime.config_json",
        "type": "object",
        "properties": props,
        "additionalProperties": False,
        "required": [name for name, prop in props.items() if prop.get("required")],
    }


def render() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the path given (default: config/schemas/config.schema.json)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else SCHEMA_PATH
    path.write_text(render(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
