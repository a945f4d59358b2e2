"""The pieces that bound untrusted input: bounded JSON, clipped and rate-limited logs.

The command id store has its own tests (tests/services/test_command_ids.py)."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safehouse.device.core import boundedjson
from safehouse.device.core.ratelimit import RateLimitedLog, clip


def refusal(data: bytes | str, max_bytes: int = 1000, max_depth: int = 4) -> boundedjson.JsonRefused:
    with pytest.raises(boundedjson.JsonRefused) as info:
        boundedjson.loads(data, max_bytes=max_bytes, max_depth=max_depth)
    return info.value


def test_depth_is_counted_outside_strings_only() -> None:
    assert boundedjson.loads('{"a": "[[[[[[[[{{{{"}', max_bytes=100, max_depth=1) == {"a": "[[[[[[[[{{{{"}
    assert boundedjson.loads(r'{"a": "\"[[[[["}', max_bytes=100, max_depth=1) == {"a": '"[[[[['}
    err = refusal('{"id": "d", "x": [[[[[1]]]]]}')
    assert err.reason == "too_deep" and err.id == "d" and "6 levels" in str(err)


def test_the_id_is_read_from_the_top_level_only_and_only_when_short() -> None:
    assert refusal(b'{"x": {"id": "inner"}, "y": [[[[[[]]]]]]}').id is None
    assert refusal(b'{"x": {"id": "inner"}, "id": "outer", "y": [[[[[[]]]]]]}').id == "outer"
    assert refusal(b'{"id": "' + b"a" * 65 + b'", "y": [[[[[[]]]]]]}').id is None
    assert refusal(b'["id", "nope", [[[[[]]]]]]').id is None
    assert refusal(b'{"id": "cut", "ts": "2026').id == "cut"
    assert refusal(b'{"id": "early", "pad": "' + b"x" * 2000 + b'"}').reason == "too_large"
    assert refusal(b'{"id": "early", "pad": "' + b"x" * 2000 + b'"}').id == "early"


def test_a_stray_quote_or_a_lone_backslash_never_breaks_the_scan() -> None:
    for text in ['"', '\\', '"\\', '{"a": "\\', '"\\"' * 5000, '[' * 10 + '"']:
        depth, _ = boundedjson.scan(text)
        assert depth >= 0
        with pytest.raises(boundedjson.JsonRefused):
            boundedjson.loads(text, max_bytes=100_000, max_depth=4)


@settings(max_examples=500, deadline=None)
@given(st.recursive(st.none() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                               max_size=3),
                    max_leaves=20))
def test_the_scan_agrees_with_json_on_depth(value: object) -> None:
    def depth(v: object) -> int:
        if isinstance(v, list):
            return 1 + max((depth(x) for x in v), default=0)
        if isinstance(v, dict):
            return 1 + max((depth(x) for x in v.values()), default=0)
        return 0

    assert boundedjson.scan(json.dumps(value))[0] == depth(value)


def test_clip_bounds_what_a_log_line_quotes() -> None:
    assert clip("short") == "'short'"
    long = clip("x" * 10_000)
    assert len(long) < 240 and long.endswith("(10000 chars)")
    assert clip(b"\xff" * 5000).endswith("(5000 bytes)")


def test_rate_limited_log_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("t.rl"), burst=3, per=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, "t.rl"):
        written = [log.warning("cmd", "bad %s", i) for i in range(100)]
        assert written.count(True) == 3 and log.suppressed_total == 97
        assert log.warning("other", "another key has its own budget")
        now[0] = 10.0
        assert log.warning("cmd", "bad %s", "again")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[:3] == ["bad 0", "bad 1", "bad 2"]
    assert lines[-1] == "bad again (97 similar lines suppressed before this one)"
