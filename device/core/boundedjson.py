"""JSON from untrusted peers, parsed within a size and a nesting limit, never by recursion first.

``json.loads`` recurses once per nesting level: 20,000 ``[`` raise RecursionError (not
ValueError) after burning the stack, so a 60 KB command got no answer and a 61 KB traceback.
Here the size is checked before anything is decoded, and the depth is counted by a linear
scan that only looks at brackets outside strings (one C-level regex pass, no recursion);
``json.loads`` then runs only on input whose depth is already known to be small.

The same scan picks up a top-level ``"id": "..."`` on the way, so a refusal can echo the id
of a payload that is otherwise invalid (too deep, bad JSON, even cut short) — only an id that
is printable Unicode (device/core/text.py): a refusal must itself be sendable.

A key given twice in one object is refused (``duplicate_key``): ``json.loads`` keeps the last
value while the scan echoed the first id, so a command acted on one value and answered for
another. A repeated ``id`` is never echoed: which one was meant cannot be known.
"""

from __future__ import annotations

import json
import re
from typing import Any

from safehouse.device.core.text import problem

MAX_ID = 64  # an id longer than this is not echoed (and is refused as an id)

# A JSON string (also one left open at the end of the input: it runs to the end, so a stray
# quote can never make the scan quadratic), or one bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)|[\[\]{}]', re.S)
_COLON = re.compile(r"\s*:\s*")


class JsonRefused(ValueError):
    """The input is too large, too deep, not JSON or repeats a key; ``id`` is its top-level id
    when readable."""

    def __init__(self, reason: str, message: str, id_: str | None = None) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.id = reason, id_


def scan(text: str) -> tuple[int, str | None]:
    """(deepest nesting, top-level ``id`` string or None) of ``text``, in one linear pass."""
    depth = deepest = 0
    found: str | None = None
    pending_key = -1  # end offset of a depth-1 "id" key whose value may follow
    for m in _TOKEN.finditer(text):
        tok = m.group()
        first = tok[0]
        if first == '"':
            if pending_key >= 0 and found is None and _COLON.fullmatch(text, pending_key, m.start()):
                found = _string(tok)
            pending_key = m.end() if depth == 1 and tok == '"id"' else -1
            continue
        pending_key = -1
        if first in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth = max(0, depth - 1)
    return deepest, found


def _string(token: str) -> str | None:
    if len(token) > MAX_ID * 6 + 2 or len(token) < 2 or not token.endswith('"'):
        return None
    try:
        value = json.loads(token)
    except ValueError:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID or problem(value) is not None:
        return None
    return value


class _Repeated(Exception):
    """Raised out of ``json.loads`` by its object hook; never seen outside this module."""

    def __init__(self, key: str) -> None:
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads``'s object hook: a key given twice stops the parse."""
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise _Repeated(key)
            seen.add(key)
    return body


def loads(data: bytes | str, *, max_bytes: int, max_depth: int, what: str = "payload") -> Any:
    """Parse ``data`` or raise ``JsonRefused`` (reasons: too_large, too_deep, not_json,
    duplicate_key)."""
    size = len(data)
    if size > max_bytes:
        head = data[:max_bytes]
        text = head.decode("utf-8", "replace") if isinstance(head, bytes | bytearray) else head
        raise JsonRefused("too_large", f"{what} of {size} bytes is over the {max_bytes} byte limit",
                          scan(text)[1])
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JsonRefused("not_json", f"{what} is not valid UTF-8 JSON",
                              scan(data.decode("utf-8", "replace"))[1]) from None
    depth, found = scan(text)
    if depth > max_depth:
        raise JsonRefused("too_deep", f"{what} nests {depth} levels deep; at most {max_depth} allowed",
                          found)
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except _Repeated as exc:
        raise JsonRefused("duplicate_key", f"{what} gives the key {ascii(exc.key)[:80]} more than once",
                          None if exc.key == "id" else found) from None
    except (ValueError, RecursionError):
        raise JsonRefused("not_json", f"{what} is not valid UTF-8 JSON", found) from None
