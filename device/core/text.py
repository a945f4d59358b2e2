"""Text from outside (argv, the control socket, MQTT) is valid Unicode and printable, or refused.

Python hands every boundary a ``str`` that may not be Unicode at all: argv and file names
carry an undecodable byte as a lone surrogate (``b"Jos\\xe9"`` from a Latin-1 terminal becomes
``"Jos\\udce9"``), and JSON's ``"\\ud800"`` escape gives one too (a web page that cuts an emoji
at 64 UTF-16 units sends exactly that). Such a string passes every check on its way in and
fails only when it is encoded: at the outbox, the id store or the broker, where one ack
stopped every later alarm. So it is refused where it enters, with a reason word:

- ``not_unicode``: a lone surrogate (named as the byte it stood for when it came from argv);
- ``not_printable``: a control character, a line or paragraph separator, or a bidirectional
  override, which would rewrite what a log line or a technician's terminal shows;
- ``too_long``: over the field's limit, in characters.

``repaired()`` is the last line of defence behind the boundary: an event that somehow still
holds a lone surrogate is written with U+FFFD in its place rather than not at all.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import Any

REPLACEMENT = "\ufffd"
# One C-speed scan for every refused character (a 64 KiB command is scanned in well under a
# millisecond): surrogates (Unicode category Cs), controls (Cc: C0, DEL, C1), the line and
# paragraph separators (Zl, Zp), and the explicit direction embeddings, overrides and isolates
# ("Trojan source": text that displays in another order than it reads).
_SURROGATES = "\ud800-\udfff"
_REFUSED = re.compile(f"[{_SURROGATES}\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


class TextRefused(ValueError):
    """The text is refused; ``reason`` is the stable word its message starts with."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def describe(char: str) -> str:
    """How a refused character is named in an error: ASCII only, whatever it is."""
    point = ord(char)
    if 0xDC80 <= point <= 0xDCFF:  # Python's surrogateescape: the byte it could not decode
        return f"U+{point:04X}, a lone surrogate standing for the byte 0x{point - 0xDC00:02x} (not UTF-8)"
    if 0xD800 <= point <= 0xDFFF:
        return f"U+{point:04X}, a lone surrogate (half of a UTF-16 pair)"
    return f"U+{point:04X} ({unicodedata.name(char, 'a control character').lower()}), not printable"


def problem(value: str, *, limit: int | None = None) -> TextRefused | None:
    """Why ``value`` is refused (``limit``: at most that many characters), or None."""
    found = _REFUSED.search(value)
    if found is not None:
        char, i = found.group(), found.start()
        reason = "not_unicode" if "\ud800" <= char <= "\udfff" else "not_printable"
        return TextRefused(reason, f"position {i} holds {describe(char)}")
    if limit is not None and len(value) > limit:
        return TextRefused("too_long", f"{len(value)} characters; at most {limit} allowed")
    return None


def check(value: str, what: str, *, limit: int | None = None) -> str:
    """``value`` when it is acceptable text; else raise ``TextRefused`` naming ``what``."""
    refused = problem(value, limit=limit)
    if refused is not None:
        raise TextRefused(refused.reason, f"{what}: {str(refused).split(': ', 1)[1]}")
    return value


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a parsed JSON value, keys included, with where it sits."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield f"a key of {where}", key
            yield from _strings(item, f"{where}.{ascii(key)[1:-1]}"[:80])
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item, f"{where}[]"[:80])


def check_json(value: Any, what: str) -> None:
    """Raise ``TextRefused`` for the first string (or key) anywhere in ``value`` that is refused."""
    for where, text in _strings(value, what):
        refused = problem(text)
        if refused is not None:
            raise TextRefused(refused.reason, f"{where}: {str(refused).split(': ', 1)[1]}")


def repaired(value: Any) -> Any:
    """``value`` with every lone surrogate (in strings and keys, at any depth) made U+FFFD."""
    if isinstance(value, str):
        return re.sub(f"[{_SURROGATES}]", REPLACEMENT, value)
    if isinstance(value, dict):
        return {repaired(str(k)): repaired(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [repaired(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return repaired(str(value))
