"""`safehouse volunteer`, through the real `safehouse` entry point: PINs from stdin or a terminal,
never echoed, and the exit codes of device/cli/main.py (0 ok, 1 refused, 2 usage, 78 config).

In process through ``main([...])`` for the many small cases; as a subprocess
(``python -m safehouse.device.cli.main``) where the process boundary matters: stdin, the file's
owner when root enrols.
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path

import pytest

from safehouse.device.cli.main import main
from safehouse.services.volunteers import Match, VolunteerRegistry
from tests.rig.availability import unavailable
from tests.rig.daemon import cli
from tests.rig.kiosk_config import write_config

PIN, DURESS, OTHER_PIN = "73914628", "51862093", "40027715"  # 8 digits: never in base64 by chance


def test_cli_add_list_remove_with_pin_stdin(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    done = cli(config, "volunteer", "add", "v042", "--name", "Chan Tai Man", "--duress", "--pin-stdin",
               stdin=f"{PIN}\n{DURESS}\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("added v042 (Chan Tai Man) with a duress PIN; "
                                   "the running kiosk picks it up within a few seconds")
    registry = VolunteerRegistry.load(tmp_path / "volunteers.toml")
    assert registry.verify(DURESS) == Match(registry.volunteers[0], duress=True)

    taken = cli(config, "volunteer", "add", "v043", "--name", "Lee", "--pin-stdin", stdin=f"{DURESS}\n")
    assert taken.returncode == 1 and "already in use" in taken.stderr
    for result in (done, taken):
        assert PIN not in result.stdout + result.stderr and DURESS not in result.stdout + result.stderr
    assert cli(config, "volunteer", "remove", "v042").stdout.startswith("removed v042 (Chan Tai Man)")
    assert VolunteerRegistry.load(tmp_path / "volunteers.toml").volunteers == ()


def test_cli_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                        monkeypatch: pytest.MonkeyPatch) -> None:
    config = str(write_config(tmp_path))

    def run(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(["--config", config, "volunteer", *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = run("list")
    assert code == 0 and "no volunteers enrolled" in out
    assert run("add", "v042", "--name", "Chan", "--pin-stdin", stdin=f"{PIN}\n")[0] == 0
    assert run("add", "v043", "--name", "Lee", "--duress", "--pin-stdin", stdin=f"{OTHER_PIN}\n")[0] == 2
    assert run("add", "v043", "--name", "Lee")[0] == 2  # no terminal, no --pin-stdin: usage
    assert run("add", "v043", "--name", "Lee", "--pin-stdin", stdin="12\n")[0] == 1
    typed = iter([OTHER_PIN, OTHER_PIN, "99887766", "99887766", "31415926", "31415927"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    assert main(["--config", config, "volunteer", "add", "v043", "--name", "Lee", "--duress"]) == 0
    assert main(["--config", config, "volunteer", "add", "v044", "--name", "Ho"]) == 1
    assert "the two entries differ" in capsys.readouterr().err
    assert VolunteerRegistry.load(tmp_path / "volunteers.toml").verify("99887766") is not None

    code, out, _ = run("list")
    assert code == 0 and out.splitlines()[:3] == ["id    duress  name", "v042  no      Chan",
                                                   "v043  yes     Lee"]
    code, out, _ = run("list", "--json")
    assert json.loads(out) == [{"id": "v042", "name": "Chan", "duress": False},
                               {"id": "v043", "name": "Lee", "duress": True}]
    assert "scrypt" not in out
    assert run("remove", "v999")[0] == 1
    (tmp_path / "volunteers.toml").write_text("[[volunteer]]\nid = 3\n")
    code, _, err = run("list")
    assert code == 78 and "volunteer[0].id" in err


def test_the_first_enrolment_as_root_is_readable_by_the_daemons_group(tmp_path: Path) -> None:
    """README: `sudo safehouse volunteer add` into /etc/safehouse (root:safehouse 0750). A file
    left root:root 0640 is unreadable by the daemon's user: no PIN would ever work."""
    if os.geteuid() != 0:
        unavailable("needs root: the file's group is the directory's, not the caller's")
    folder = tmp_path / "etc"
    folder.mkdir(mode=0o750)
    os.chown(folder, 0, 65534)  # the daemon's group stands in as nogroup's id
    config = write_config(folder)
    res = cli(config, "volunteer", "add", "v001", "--name", "Chan Tai Man", "--pin-stdin", stdin=f"{PIN}\n")
    assert res.returncode == 0, res.stderr
    made = (folder / "volunteers.toml").stat()
    assert (made.st_uid, made.st_gid, made.st_mode & 0o777) == (0, 65534, 0o640)  # group may read
