"""`safehouse accept` refuses what it cannot do before it restarts anything: a timeout or duration
that is not a positive number (nan included), and a report folder it cannot write (the whole
acceptance once ran, then ended in a FileNotFoundError traceback and no report).

The acceptance itself: tests/e2e/test_accept.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from safehouse.device.cli.main import main
from tests.rig.kiosk_config import write_config


@pytest.mark.parametrize("option", ["--record-seconds", "--ready-timeout", "--step-timeout",
                                    "--selftest-timeout"])
def test_nan_is_not_a_positive_number_of_seconds(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  option: str) -> None:
    code = main(["--config", str(write_config(tmp_path)), "accept", "--service", "sim", option, "nan"])
    assert code == 2
    assert f"{option} must be > 0" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()  # nothing started


def test_a_report_folder_that_cannot_be_written_is_refused_first(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "reports"
    code = main(["--config", str(write_config(tmp_path)), "accept", "--service", "sim",
                 "--report-dir", str(folder)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot write the report in {folder}" in err and "Traceback" not in err
    assert not (tmp_path / "state").exists()  # no daemon was started
