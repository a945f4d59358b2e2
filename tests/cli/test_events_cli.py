"""`safehouse events --last N`, through the real entry point: exactly the last N (0: none), and a
negative N is a usage error (2) instead of quietly printing all but the first -N.

The events are an old ``events.jsonl`` in state_dir (what `events` reads before the daemon's first
start after an upgrade), so no daemon is needed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safehouse.device.cli.main import main
from safehouse.device.core.events import Event
from safehouse.services.outbox_legacy import log_path
from tests.rig.kiosk_config import write_config


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    lines = [Event(f"E{seq}", seq, "K1", "p", "panic", 120, "2025-01-01T00:00:00.000Z", True, 1.0 * seq,
                   "boot", False).to_json() + "\n" for seq in (1, 2, 3)]
    log_path(tmp_path / "state").write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(("last", "seqs"), [("1", [3]), ("2", [2, 3]), ("3", [1, 2, 3]), ("9", [1, 2, 3]),
                                            ("0", [])])
def test_last_prints_exactly_the_last_n(config: Path, capsys: pytest.CaptureFixture[str], last: str,
                                        seqs: list[int]) -> None:
    assert main(["--config", str(config), "events", "--json", "--last", last]) == 0
    out = capsys.readouterr().out
    assert [Event.from_json(line).seq for line in out.splitlines()] == seqs


def test_a_negative_last_is_a_usage_error(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config", str(config), "events", "--last", "-1"])
    assert info.value.code == 2
    assert "argument --last:" in capsys.readouterr().err
