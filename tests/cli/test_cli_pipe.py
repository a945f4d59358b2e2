"""The CLI piped into a reader that stops early (`safehouse events | head`): no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.rig.kiosk_config import write_config

CLI = [sys.executable, "-m", "safehouse.device.cli.main"]


def test_output_into_a_closed_pipe_ends_quietly(short_dir: Path) -> None:
    """Found by testing: `safehouse status | head -3` ended in a BrokenPipeError traceback."""
    config = write_config(short_dir)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first line: every write fails
    try:
        res = subprocess.run([*CLI, "--config", str(config), "config", "check"], stdout=write_end,
                             stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert "Traceback" not in res.stderr and "BrokenPipeError" not in res.stderr, res.stderr
    assert res.returncode == 1
