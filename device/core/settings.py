"""Config declared once: a section is a frozen dataclass, and its fields carry everything else.

Each field is made with ``setting(default, doc, check, convert=...)``; from the dataclass
alone this module checks a raw TOML table (every problem at once, each with its key path, so
a technician on SSH fixes a file in one pass) and writes the section's JSON Schema (what an
editor uses through taplo). The README reference, the checker, the defaults and the schema
cannot drift apart because there is nothing else to keep in step. Standard library only: the
kiosk's whole daemon must stay under 40 MB with camera and microphone off.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
IDENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
ID_TEXT = "1-64 characters of A-Z a-z 0-9 _ -"
REQUIRED: Any = dataclasses.MISSING  # a key with no default: the file must set it
_META = "safehouse.setting"


@dataclass(frozen=True)
class Rule:
    """A check on a value of the right TOML type: a message, or None; and its JSON Schema words."""

    test: Callable[[Any], str | None]
    schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __call__(self, value: Any) -> str | None:
        return self.test(value)


def in_range(lo: float, hi: float) -> Rule:
    return Rule(lambda v: None if lo <= v <= hi else f"must be between {lo} and {hi}, got {v!r}",
                {"minimum": lo, "maximum": hi})


def even_in_range(lo: int, hi: int) -> Rule:
    """A pixel size: picamera2 refuses odd widths and heights, so the check catches it, not the start."""
    inner = in_range(lo, hi)
    return Rule(lambda v: inner(v) or (None if v % 2 == 0 else f"must be even, got {v!r}"),
                {**inner.schema, "multipleOf": 2})


def one_of(*choices: object) -> Rule:
    return Rule(lambda v: None if v in choices
                else f"must be one of {', '.join(map(repr, choices))}, got {v!r}", {"enum": list(choices)})


def matches(pattern: re.Pattern[str], what: str, allow_empty: bool = False) -> Rule:
    def test(v: Any) -> str | None:
        if allow_empty and v == "":
            return None
        # fullmatch: ``$`` alone also matches before a final newline (JSON Schema's does not)
        return None if pattern.fullmatch(v) else f"must be {what}, got {v!r}"

    return Rule(test, {"pattern": f"^$|{pattern.pattern}" if allow_empty else pattern.pattern})


@dataclass(frozen=True)
class Convert:
    """TOML value -> the field's value; ``base`` is the config file's folder (None: not known)."""

    toml: type
    to_value: Callable[[Any, Path | None], Any]


def _path(p: str, base: Path | None) -> Path:
    """Relative paths are taken from the config file's folder."""
    if "\x00" in p:  # TOML can write "\u0000"; no system call takes it
        raise ValueError("a path cannot hold a NUL character")
    return (base / p).resolve() if p and base is not None and not os.path.isabs(p) else Path(p)


def _time(v: str, _base: Path | None) -> time:
    hh, mm = v.split(":")
    return time(int(hh), int(mm))


as_path = Convert(str, _path)
as_time = Convert(str, _time)
as_path_text = Convert(str, lambda v, base: str(_path(v, base)) if v else "")  # '' stays unset


def as_path_or(fallback: str) -> Convert:
    """A path whose '' means ``fallback`` beside the config file (e.g. volunteers.toml)."""
    return Convert(str, lambda v, base: _path(v or fallback, base))


@dataclass(frozen=True)
class Meta:
    default: Any  # the TOML form, as written in config.toml (REQUIRED: none)
    doc: str
    check: Callable[[Any], str | None] | None
    convert: Convert | None


def setting(default: Any, doc: str, check: Callable[[Any], str | None] | None = None, *,
            convert: Convert | None = None) -> Any:
    """A dataclass field declaring one config key; the dataclass default is the converted default."""
    meta = {_META: Meta(default, doc, check, convert)}
    if default is REQUIRED:
        return dataclasses.field(metadata=meta)
    value = convert.to_value(default, None) if convert and default is not None else default
    return dataclasses.field(default=value, metadata=meta)


# --- TOML kinds: the type a key holds in the file -----------------------------------------------

_NUMBERS, _STRINGS = "numbers", "strings"  # the two list kinds: camera.offsets, keypad.rollcall_times
_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
          _NUMBERS: "a list of numbers", _STRINGS: "a list of strings"}
_JSON: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
    bool: {"type": "boolean"}, _NUMBERS: {"type": "array", "items": {"type": "number"}},
    _STRINGS: {"type": "array", "items": {"type": "string"}}}


@dataclass(frozen=True)
class Key:
    """One declared key as the checker sees it."""

    name: str
    kind: Any
    optional: bool  # may be absent with no default (an unwired GPIO input)
    meta: Meta


def keys(cls: type) -> list[Key]:
    """The declared keys of a section dataclass, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        meta = f.metadata.get(_META)
        if meta is None:
            raise TypeError(f"{cls.__name__}.{f.name}: declare it with setting()")
        hint, optional = hints[f.name], False
        if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint):
            hint, optional = next(a for a in typing.get_args(hint) if a is not type(None)), True
        out.append(Key(f.name, _kind(cls, f.name, hint, meta), optional, meta))
    return out


def _kind(cls: type, name: str, hint: Any, meta: Meta) -> Any:
    if meta.convert is not None:
        return meta.convert.toml
    if hint in (str, int, float, bool):
        return hint
    if typing.get_origin(hint) is tuple:
        return {float: _NUMBERS, str: _STRINGS}[typing.get_args(hint)[0]]
    raise TypeError(f"{cls.__name__}.{name}: no TOML kind for {hint!r}; give convert=")


def _number(value: int | float) -> int | float:
    """An integer as a float, or as it is when past 1e308 (tomllib reads any size): its range
    check then says it is too large, where float() raised OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return value


def _coerce(kind: Any, value: Any) -> tuple[bool, Any]:
    """TOML distinguishes 5 from 5.0; a technician should not have to."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return True, _number(value)
    if kind is int and isinstance(value, bool):
        return False, value
    if kind == _NUMBERS:
        ok = isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        return ok, tuple(_number(v) for v in value) if ok else value
    if kind == _STRINGS:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, tuple(value) if ok else value
    return isinstance(value, kind), value


def read(cls: type, section: str, raw: Any, base: Path | None) -> tuple[Any, list[str]]:
    """Check a raw TOML table against a section; return (instance, every problem).

    The instance is built even when there are problems (a mistyped value replaced by its
    default, a value failing its check kept as written) so that cross-checks still run and
    the technician sees them in the same pass; it is only handed on when the list is empty.
    """
    problems: list[str] = []
    declared = keys(cls)
    if not isinstance(raw, Mapping):
        problems.append(f"{section}: must be a table ([{section}])")
        raw = {}
    known = [k.name for k in declared]
    problems += [f"{section}.{name}: unknown key (known: {', '.join(known)})"
                 for name in raw if name not in known]
    values: dict[str, Any] = {}
    for key in declared:
        path, default = f"{section}.{key.name}", key.meta.default
        if key.name not in raw:
            if default is REQUIRED:
                problems.append(f"{path}: required, missing ({key.meta.doc})")
                values[key.name] = None
            else:
                values[key.name] = _convert(key, default, base)
            continue
        ok, value = _coerce(key.kind, raw[key.name])
        if not ok:
            problems.append(f"{path}: must be {_NAMES[key.kind]}, got {raw[key.name]!r}")
            values[key.name] = None if default is REQUIRED else _convert(key, default, base)
            continue
        fault = key.meta.check(value) if key.meta.check else None
        if not fault:
            try:
                values[key.name] = _convert(key, value, base)
                continue
            except ValueError as exc:  # a value its conversion refuses (a path with a NUL)
                fault = f"{exc}, got {value!r}"
        problems.append(f"{path}: {fault}")
        values[key.name] = value  # unconverted: the instance is for cross-checks only
    return cls(**values), problems


def _convert(key: Key, value: Any, base: Path | None) -> Any:
    conv = key.meta.convert
    return conv.to_value(value, base) if conv is not None and value is not None else value


def cross_check(section: str, instance: Any) -> list[str]:
    """Problems between keys of one section: its ``cross_problems(section)``, if it has one.

    A section whose check JSON Schema can express (``if``/``then``) says so in a static
    ``json_schema_between_keys()``, merged into its table's schema, so that an editor flags it too.
    """
    method = getattr(instance, "cross_problems", None)
    return list(method(section)) if method is not None else []


def json_schema(cls: type) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a section's TOML table, from its declaration."""
    props: dict[str, Any] = {}
    required = []
    for key in keys(cls):
        prop: dict[str, Any] = {"description": key.meta.doc, **_JSON[key.kind]}
        if key.meta.default is REQUIRED:
            required.append(key.name)
        elif key.meta.default is not None:
            default = key.meta.default
            prop["default"] = list(default) if isinstance(default, tuple) else default
        if isinstance(key.meta.check, Rule):
            for word, value in key.meta.check.schema.items():  # "items" of a list kind: merged
                prop[word] = {**prop[word], **value} if word == "items" and word in prop else value
        props[key.name] = prop
    doc = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    out: dict[str, Any] = {"type": "object", "description": doc, "properties": props,
                           "additionalProperties": False}
    if required:
        out["required"] = required
    extra = getattr(cls, "json_schema_between_keys", None)  # its cross_problems, where JSON Schema can say it
    return {**out, **extra()} if extra is not None else out
