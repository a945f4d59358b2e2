"""Validate payloads against the published JSON Schemas (config/schemas/): the precinct's contract."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from tests.rig import REPO

SCHEMAS = REPO / "config" / "schemas"


@cache
def _validator(kind: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{kind}.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(kind: str, payload: bytes | dict[str, Any]) -> dict[str, Any]:
    """Parse (if bytes) and validate; raise AssertionError listing every violation."""
    body = json.loads(payload) if isinstance(payload, bytes) else payload
    errors = sorted(_validator(kind).iter_errors(body), key=lambda e: list(e.path))
    assert not errors, f"{kind} payload violates its schema: " + "; ".join(
        f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
    return dict(body)
