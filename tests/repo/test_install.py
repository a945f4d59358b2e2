"""The Raspberry Pi installer: files and modes under a DESTDIR, config kept, idempotent, uninstall.

Every test installs into a temporary DESTDIR with --no-apt --no-pip --no-systemctl, so nothing
on this machine's /etc, /opt or systemd is touched and no network is needed.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.rig.availability import require_tool, unavailable
from tests.rig.sandbox import parse_unit

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
INSTALL = SYSTEMD / "install.sh"
UNINSTALL = SYSTEMD / "uninstall.sh"
UNITS = ("safehouse.service", "safehouse-selftest.service", "safehouse-selftest.timer")
FAST = ("--no-apt", "--no-pip", "--no-systemctl", "--venv-python", sys.executable)


def run(script: Path, destdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    res = subprocess.run(["bash", str(script), "--destdir", str(destdir), *args], capture_output=True,
                         text=True, timeout=60, check=False, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def install(destdir: Path) -> subprocess.CompletedProcess[str]:
    return run(INSTALL, destdir, *FAST)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_install_lays_out_venv_units_sysusers_tmpfiles_and_config_dir(tmp_path: Path) -> None:
    res = install(tmp_path)
    venv = tmp_path / "opt/safehouse"
    assert (venv / "pyvenv.cfg").is_file()
    assert "include-system-site-packages = true" in (venv / "pyvenv.cfg").read_text()
    assert (venv / "bin/python").exists()
    assert (venv / "README.md").read_bytes() == (REPO / "README.md").read_bytes()
    for unit in UNITS:
        dest = tmp_path / "etc/systemd/system" / unit
        assert dest.read_bytes() == (SYSTEMD / unit).read_bytes(), unit
        assert mode(dest) == 0o644, unit
    sysusers = tmp_path / "usr/lib/sysusers.d/safehouse.conf"
    tmpfiles = tmp_path / "usr/lib/tmpfiles.d/safehouse.conf"
    assert sysusers.read_bytes() == (SYSTEMD / "safehouse.sysusers").read_bytes()
    assert tmpfiles.read_bytes() == (SYSTEMD / "safehouse.tmpfiles").read_bytes()
    assert mode(sysusers) == mode(tmpfiles) == 0o644
    etc = tmp_path / "etc/safehouse"
    assert mode(etc) == 0o750
    example = etc / "config.toml.example"
    assert example.read_bytes() == (REPO / "config/config.example.toml").read_bytes()
    assert mode(example) == 0o640
    assert not (etc / "config.toml").exists()  # provisioning writes it, not the installer
    link = tmp_path / "usr/local/bin/safehouse"
    assert link.is_symlink() and os.readlink(link) == "/opt/safehouse/bin/safehouse"
    assert "safehouse provision" in res.stdout  # the next step is spelled out
    assert "skipped systemctl" in res.stdout


def test_install_keeps_existing_config_volunteers_and_tls_and_runs_twice(tmp_path: Path) -> None:
    etc = tmp_path / "etc/safehouse"
    (etc / "tls").mkdir(parents=True)
    kept = {etc / "config.toml": b"[device]\nid = \"SH-0042\"\n",
            etc / "volunteers.toml": b"# volunteers\n",
            etc / "tls/client.key": b"-----BEGIN PRIVATE KEY-----\n"}
    for path, data in kept.items():
        path.write_bytes(data)
    (etc / "config.toml").chmod(0o640)
    install(tmp_path)
    res = install(tmp_path)  # idempotent
    assert "kept the existing /etc/safehouse/config.toml" in res.stdout
    for path, data in kept.items():
        assert path.read_bytes() == data, path
    assert mode(etc / "config.toml") == 0o640
    assert (tmp_path / "etc/systemd/system/safehouse.service").is_file()


def test_uninstall_removes_units_and_venv_but_keeps_config_and_state(tmp_path: Path) -> None:
    install(tmp_path)
    config = tmp_path / "etc/safehouse/config.toml"
    config.write_text("[device]\n")
    state = tmp_path / "var/lib/safehouse/outbox.db"
    state.parent.mkdir(parents=True)
    state.write_bytes(b"SQLite format 3\0")
    res = run(UNINSTALL, tmp_path, "--no-systemctl")
    for unit in UNITS:
        assert not (tmp_path / "etc/systemd/system" / unit).exists(), unit
    assert not (tmp_path / "opt/safehouse").exists()
    assert not (tmp_path / "usr/lib/sysusers.d/safehouse.conf").exists()
    assert not (tmp_path / "usr/lib/tmpfiles.d/safehouse.conf").exists()
    assert not (tmp_path / "usr/local/bin/safehouse").is_symlink()
    assert config.read_text() == "[device]\n"
    assert state.read_bytes() == b"SQLite format 3\0"
    assert "kept /etc/safehouse" in res.stdout
    run(UNINSTALL, tmp_path, "--no-systemctl")  # twice is fine too


def test_help_and_unknown_options() -> None:
    for script in (INSTALL, UNINSTALL):
        res = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True,
                             timeout=10, check=False)
        assert res.returncode == 0 and "--destdir" in res.stdout, script
        res = subprocess.run(["bash", str(script), "--bogus"], capture_output=True, text=True,
                             timeout=10, check=False)
        assert res.returncode != 0 and "unknown option: --bogus" in res.stderr, script


def test_scripts_parse_and_pass_shellcheck_when_present() -> None:
    for script in (INSTALL, UNINSTALL):
        assert os.access(script, os.X_OK), f"{script} is not executable"
        res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, timeout=10,
                             check=False)
        assert res.returncode == 0, res.stderr
    shellcheck = shutil.which("shellcheck")
    if shellcheck:
        res = subprocess.run([shellcheck, str(INSTALL), str(UNINSTALL)], capture_output=True,
                             text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stdout


def test_selftest_service_and_timer_verify_clean(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    safehouse = REPO / ".venv" / "bin" / "safehouse"
    service = tmp_path / "safehouse-selftest.service"
    service.write_text((SYSTEMD / service.name).read_text()
                       .replace("/opt/safehouse/bin/safehouse", str(safehouse)))
    timer = tmp_path / "safehouse-selftest.timer"
    shutil.copy(SYSTEMD / timer.name, timer)
    res = subprocess.run([analyze, "verify", str(service), str(timer)], capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0 and res.stdout + res.stderr == "", res.stdout + res.stderr


def test_selftest_timer_is_daily_spread_and_runs_the_selftest_command() -> None:
    timer = (SYSTEMD / "safehouse-selftest.timer").read_text()
    for line in ("OnCalendar=daily", "RandomizedDelaySec=", "Persistent=true",
                 "Unit=safehouse-selftest.service", "WantedBy=timers.target"):
        assert line in timer, line
    service = (SYSTEMD / "safehouse-selftest.service").read_text()
    assert ("ExecStart=/opt/safehouse/bin/safehouse --config /etc/safehouse/config.toml selftest"
            in service)
    assert "Type=oneshot" in service and "User=safehouse" in service
    # RuntimeDirectory=safehouse here would delete the daemon's /run/safehouse when the
    # self-test ends: it has its own, for lgpio's FIFO.
    assert parse_unit(service)["RuntimeDirectory"] == ["safehouse-selftest"]


def test_sysusers_creates_the_user_in_the_device_groups(tmp_path: Path) -> None:
    sysusers = require_tool("systemd-sysusers")
    text = (SYSTEMD / "safehouse.sysusers").read_text()
    for group in ("gpio", "video", "audio", "dialout"):
        assert f"m safehouse {group}" in text, group
    res = subprocess.run([sysusers, "--dry-run", f"--root={tmp_path}", "-"], input=text,
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    assert "Creating user 'safehouse'" in res.stdout + res.stderr


@pytest.mark.parametrize("target", ["install", "uninstall"])
def test_make_targets_pass_destdir_and_skip_apt(tmp_path: Path, target: str) -> None:
    make = require_tool("make")
    res = subprocess.run([make, "-n", "-C", str(REPO), target, f"DESTDIR={tmp_path}"],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
    assert f"systemd/{target}.sh" in res.stdout and str(tmp_path) in res.stdout
    if target == "install":
        assert "--no-apt" in res.stdout  # NO_APT defaults to on under a DESTDIR


def test_destdir_from_the_environment_and_a_bad_source(tmp_path: Path) -> None:
    env = {**os.environ, "DESTDIR": str(tmp_path / "stage")}
    res = subprocess.run(["bash", str(INSTALL), *FAST], capture_output=True, text=True, timeout=60,
                         check=False, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "stage/etc/systemd/system/safehouse.service").is_file()
    res = subprocess.run(["bash", str(INSTALL), *FAST, "--source", str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=False, env=env)
    assert res.returncode != 0 and "is not a safehouse checkout" in res.stderr


def test_a_staged_venv_names_opt_safehouse_not_the_staging_directory(tmp_path: Path) -> None:
    """Staged under DESTDIR for an image, the venv runs from /opt/safehouse: the #! lines of its
    scripts (the unit's ExecStart is bin/safehouse; pip writes the venv's path there) and its
    activate scripts must not point into the staging directory, which the Pi does not have."""
    stage = tmp_path / "stage"
    install(stage)
    bin_dir = stage / "opt/safehouse/bin"
    assert (bin_dir / "activate").is_file()
    leaks = [p.name for p in bin_dir.iterdir()
             if p.is_file() and not p.is_symlink() and str(stage).encode() in p.read_bytes()]
    assert leaks == [], f"these files in the staged venv name {stage}: {leaks}"
    assert "/opt/safehouse" in (bin_dir / "activate").read_text()
    assert (bin_dir / "python").is_symlink()  # the interpreter links stay links


def install_with_check(destdir: Path, modules: str | None = None,
                       pythonpath: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DESTDIR", "PYTHONPATH", "SAFEHOUSE_IMPORT_CHECK")}
    if modules is not None:
        env["SAFEHOUSE_IMPORT_CHECK"] = modules
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run(["bash", str(INSTALL), "--destdir", str(destdir), *FAST, "--import-check"],
                          capture_output=True, text=True, timeout=120, check=False, env=env, cwd=destdir)


def test_the_import_proof_fails_the_install_naming_what_does_not_import(tmp_path: Path) -> None:
    """This machine's interpreter has no picamera2 (as a venv without apt's would): no install."""
    res = install_with_check(tmp_path)
    assert res.returncode != 0, res.stdout
    assert "checking that the venv imports: numpy PIL lgpio picamera2" in res.stdout
    assert "cannot import picamera2: ModuleNotFoundError: No module named 'picamera2'" in res.stderr
    assert "cannot import what the kiosk's hardware needs" in res.stderr
    assert "lgpio missing: apt-get install python3-lgpio" in res.stderr
    assert "done." not in res.stdout
    assert not (tmp_path / "etc/systemd/system/safehouse.service").exists()  # nothing enabled


def test_the_import_proof_imports_the_real_lgpio_in_a_throwaway_directory(tmp_path: Path) -> None:
    site = Path(sys.executable).parent.parent / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" \
        / "site-packages"
    if not (site / "lgpio.py").exists():
        unavailable("lgpio is not installed in the test venv (the dev extra pins lgpio==0.2.2.0)")
    res = install_with_check(tmp_path, modules="lgpio json", pythonpath=str(site))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"  lgpio from {site / 'lgpio.py'}" in res.stdout
    assert "  json 2.0.9 from " in res.stdout
    assert "done." in res.stdout
    assert not list(tmp_path.glob(".lgd-nfy*")) and not list(REPO.glob(".lgd-nfy*"))  # its FIFO went away


def test_the_pi_install_keeps_apts_pillow_and_numpy() -> None:
    """Bookworm's python3-pil 9.4 and python3-numpy 1.24 satisfy the spec: pip adds no shadow."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    base = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    pi = {Requirement(r).name: Requirement(r) for r in project["optional-dependencies"]["pi"]}
    assert base["pillow"].specifier.contains("9.4.0")
    assert base["numpy"].specifier.contains("1.24.2") and pi["numpy"].specifier.contains("1.24.2")
    assert not pi["numpy"].specifier.contains("2.0.0")  # apt's picamera2 is built against numpy 1.x
    assert "lgpio" in pi and "lgpio" not in base
