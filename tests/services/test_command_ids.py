"""The executed command id store on real files: kept by the sender's ts, agreeing with the core,
never reached through a link (issue 18, items 16 and 8).

No clock anywhere: the store never reads one, and a test that passed a clock would prove nothing.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safehouse.device.core.executed_commands import CAP, ExecutedCommands
from safehouse.services.command_ids import FILE, MAX_IDS, CommandIdError, CommandIds


def test_ids_survive_a_reopen_private_and_never_expire(tmp_path: Path) -> None:
    store = CommandIds(tmp_path)
    store.remember("a", 1300.0)
    store.remember("b", 1100.0)
    store.remember("a", 9999.0)  # an id already kept keeps its first ts
    store.close()
    assert stat.S_IMODE(os.stat(tmp_path / FILE).st_mode) == 0o600
    store = CommandIds(tmp_path)
    assert store.load() == ExecutedCommands(((1100.0, "b"), (1300.0, "a")), None)
    store.close()


def test_over_the_cap_the_smallest_ts_goes_and_the_watermark_refuses_it(tmp_path: Path) -> None:
    store = CommandIds(tmp_path, max_ids=3)
    for cid, ts in (("far", 9e9), ("x", 10.0), ("y", 20.0), ("z", 5.0), ("w", 30.0)):
        store.remember(cid, ts)
    store.close()
    loaded = CommandIds(tmp_path, max_ids=3).load()
    assert loaded.entries == ((20.0, "y"), (30.0, "w"), (9e9, "far"))
    assert loaded.watermark == 10.0  # z (5) and x (10) are gone: neither can run again
    assert loaded.refusal("x", 10.0) is not None and loaded.refusal("z", 5.0) is not None
    assert loaded.refusal("new", 10.5) is None
    assert CAP == MAX_IDS == ExecutedCommands().cap  # the core and the file keep as many


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from([f"id-{i}" for i in range(40)]),
                          st.sampled_from([1.0, 2.0, 2.5, 7.0, 1e9, 253402300799.0])), max_size=60))
def test_the_core_and_the_store_agree_after_every_command_and_a_restart(
        tmp_path_factory: pytest.TempPathFactory, commands: list[tuple[str, float]]) -> None:
    folder = tmp_path_factory.mktemp("ids")
    store, core = CommandIds(folder, max_ids=8), ExecutedCommands(cap=8)
    for cid, ts in commands:
        if core.refusal(cid, ts) is None:  # as decide() does: only what may run is remembered
            core = core.add(cid, ts)
            store.remember(cid, ts)
        assert store.load() == core
    store.close()
    assert CommandIds(folder, max_ids=8).load() == core


def test_a_store_of_the_old_layout_is_taken_over_and_every_id_stays_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / FILE) as conn:
        conn.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, until REAL NOT NULL)")
        conn.executemany("INSERT INTO ids VALUES (?, ?)", [("old-1", 1300.0), ("old-2", 1100.0)])
    store = CommandIds(tmp_path)
    loaded = store.load()
    assert loaded.entries == ((1100.0, "old-2"), (1300.0, "old-1"))  # until >= the command's own ts
    assert loaded.refusal("old-1", 1000.0) is not None
    store.remember("new", 1200.0)
    store.close()


@pytest.mark.parametrize("which", [FILE, FILE + "-wal", FILE + "-shm", FILE + "-journal"])
def test_a_planted_link_is_refused_and_its_target_untouched(tmp_path: Path, which: str) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "elsewhere"
    state.mkdir()
    elsewhere.mkdir()
    target = elsewhere / "precious"
    target.write_bytes(b"not yours")
    target.chmod(0o644)
    if which != FILE:
        CommandIds(state).close()  # the database exists; a side file is the link
        (state / which).unlink(missing_ok=True)
    (state / which).symlink_to(target)
    with pytest.raises(CommandIdError, match="symbolic link"):
        CommandIds(state)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644 and target.read_bytes() == b"not yours"
    assert (state / which).is_symlink()  # refused and reported, not silently replaced


def test_anything_but_a_regular_file_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / FILE)
    with pytest.raises(CommandIdError, match="not a regular file"):
        CommandIds(tmp_path)


def test_unreadable_rows_are_dropped_and_the_watermark_covers_what_they_were(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    CommandIds(tmp_path).close()
    with sqlite3.connect(tmp_path / FILE) as conn:  # SQLite's types are loose: anything fits
        conn.executemany("INSERT INTO executed VALUES (?, ?)",
                         [("good-1", 100.0), ("good-2", 200.0), ("bad-ts", "soon"), ("bad\x00id", 50.0),
                          (None, 300.0)])
    loaded = CommandIds(tmp_path).load()
    assert loaded.entries == ((100.0, "good-1"), (200.0, "good-2"))
    assert loaded.watermark == 200.0  # whatever the lost rows held, up to the newest kept is refused
    assert "3 unreadable row(s) dropped" in caplog.text


def test_an_id_that_cannot_be_encoded_is_a_store_error_not_a_crash(tmp_path: Path) -> None:
    store = CommandIds(tmp_path)
    for cid, ts in (("\udcff", 1.0), ("ok", float("inf")), ("x" * 65, 1.0)):
        with pytest.raises(CommandIdError, match="not stored"):
            store.remember(cid, ts)
    assert store.load() == ExecutedCommands()
    store.close()
