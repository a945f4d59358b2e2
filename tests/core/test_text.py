"""The boundary's text check (device/core/text.py): exactly the characters it says it refuses."""

from __future__ import annotations

import sys
import unicodedata

from safehouse.device.core import text

BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_the_scan_refuses_exactly_surrogates_controls_separators_and_direction_overrides() -> None:
    """One regex stands for Unicode's categories Cs, Cc, Zl and Zp: checked on every code point."""
    wrong = [hex(cp) for cp in range(sys.maxunicode + 1)
             if (text.problem(chr(cp)) is not None)
             != (unicodedata.category(chr(cp)) in ("Cs", "Cc", "Zl", "Zp") or chr(cp) in BIDI)]
    assert wrong == []


def test_every_script_and_emoji_is_text() -> None:
    for ok in ("José", "陳大文", "陳　大文", "Ωmega", "🙂👍🏽", "👩\u200d👩\u200d👧", "عربي", "\ufffd",
               "x" * 10_000):
        assert text.problem(ok) is None, ok


def test_a_refusal_names_the_position_and_the_character_in_ascii() -> None:
    cases = {
        "Jos\udce9": "not_unicode: position 3 holds U+DCE9, a lone surrogate standing for the byte 0xe9 "
                     "(not UTF-8)",
        "a\ud83d": "not_unicode: position 1 holds U+D83D, a lone surrogate (half of a UTF-16 pair)",
        "ab\x00": "not_printable: position 2 holds U+0000 (a control character), not printable",
        "\u202eexe": "not_printable: position 0 holds U+202E (right-to-left override), not printable",
    }
    for value, message in cases.items():
        refused = text.problem(value)
        assert refused is not None and str(refused) == message and str(refused).isascii()
    assert str(text.problem("x" * 65, limit=64)) == "too_long: 65 characters; at most 64 allowed"


def test_json_is_checked_keys_and_all_and_repaired_when_it_must_be_written() -> None:
    try:
        text.check_json({"id": "ok", "args": [{"k\udcff": 1}]}, "command")
    except text.TextRefused as exc:
        assert exc.reason == "not_unicode" and str(exc).startswith("not_unicode: a key of command.args[]")
    else:
        raise AssertionError("a surrogate in a nested key passed")
    assert text.repaired({"by": "tech\udcff", "k\ud800": ["x\udc00", 1, None]}) == \
        {"by": "tech\ufffd", "k\ufffd": ["x\ufffd", 1, None]}
