"""`safehouse evidence`, through the real entry point: a bad argument is a usage error (2) with one
line that says what is wrong, never a traceback, and nothing is read or deleted.

The store itself (names, purge, eviction): tests/services/test_evidence_store.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safehouse.device.cli.main import main
from tests.rig.kiosk_config import write_config


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("event_id", ["../../etc", "a/b", ".hidden", "x" * 65, ""])
def test_show_refuses_an_id_that_is_not_an_event_id(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    event_id: str) -> None:
    err = _usage_error(["--config", str(write_config(tmp_path)), "evidence", "show", event_id], capsys)
    assert "argument ID:" in err and "is not allowed" in err and "Traceback" not in err


@pytest.mark.parametrize("days", ["-1", "nan", "-inf"])
def test_purge_refuses_a_negative_or_meaningless_age(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     days: str) -> None:
    config = write_config(tmp_path)
    err = _usage_error(["--config", str(config), "evidence", "purge", "--older-than", days], capsys)
    assert "argument --older-than:" in err and "Traceback" not in err


def test_purge_with_an_age_of_zero_is_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path)
    assert main(["--config", str(config), "evidence", "purge", "--older-than", "0"]) == 0
    assert capsys.readouterr().out.startswith("deleted 0 alarm(s) of evidence")
