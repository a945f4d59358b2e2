"""The shipped unit's sandbox, rebuilt here, lets the real GPIO stack get as far as x86 allows.

tests/rig/sandbox.py reads systemd/safehouse.service and rebuilds its file-system view (read-
only /, its writable directories, its working directory, /proc with its ProtectProc=/
ProcSubset=, its user with no capabilities). Inside, as that user:

1. ``import lgpio`` (the real 0.2.2.0 wheel): its FIFO .lgd-nfyN needs a writable working dir;
2. gpiozero's board detection (``get_pi_revision``, and ``LGPIOFactory()`` which starts with
   it): it must *read* /proc/cpuinfo (x86 has no ``Revision`` line, so gpiozero says
   PinUnknownPi; under ProcSubset=pid the file is gone and it dies on FileNotFoundError);
3. the daemon itself, ``safehouse --config /etc/safehouse/config.toml run`` from the unit's
   ExecStart with hardware = "pi": the view carries a Pi 4's GPIO labels in /sys, so the
   firmware picks gpiochip0 and fails exactly at opening it (there is no /dev/gpiochip0 on
   x86) with its HardwareError — not earlier at the FIFO or /proc.

The same rehearsal on the unit as it was before issue 14 (cwd /, ProcSubset=pid) fails at
the FIFO and at /proc, and so does each of those lines put back alone: a unit line that breaks
a part breaks this test.

The runtime directory holds what must outlive the daemon but not a reboot: the alarms it could
neither write nor deliver (``unsent-alarm-*.json``) and the seq lease's second copy. systemd
removes it when the service stops, also before an automatic restart, unless
``RuntimeDirectoryPreserve=`` says otherwise; the rig plays that part between two runs.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest

from tests.rig.availability import unavailable
from tests.rig.sandbox import RESTART, STOP_THEN_START, Between, Result, parse_unit, rehearse, stages

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "safehouse.service"
SELFTEST = REPO / "systemd" / "safehouse-selftest.service"
VENV_BIN = Path(sys.executable).parent

PAYLOAD = r"""
import json, os

def stage(name, fn):
    try:
        out = "ok " + str(fn())
    except BaseException as exc:
        out = f"{type(exc).__name__}: {exc}"
    print(json.dumps({name: out}), flush=True)

def board():
    from gpiozero.pins.local import get_pi_revision
    return hex(get_pi_revision())

def gpiozero_factory():
    from gpiozero.pins.lgpio import LGPIOFactory
    return LGPIOFactory()

def write(path):
    with open(path, "w") as f:
        f.write("x")
    os.unlink(path)
    return "written"

stage("who", lambda: f"uid={os.getuid()} cwd={os.getcwd()}")
stage("root_fs", lambda: write("/usr/.safehouse-probe"))
stage("state_dir", lambda: write("/var/lib/safehouse/.probe"))
stage("lgpio", lambda: __import__("lgpio").__name__)
stage("cpuinfo", lambda: len(open("/proc/cpuinfo").read()) > 0)
stage("board", board)
stage("gpiozero_factory", gpiozero_factory)
"""

CONFIG = """[device]
id = "SH-REHEARSAL"
precinct = "test"
hardware = "pi"
state_dir = "/var/lib/safehouse"

[control]
socket = "/run/safehouse/control.sock"

[camera]
enabled = false

[microphone]
enabled = false
"""


def exec_start(unit_text: str) -> list[str]:
    """The unit's ExecStart, with this checkout's safehouse in place of /opt/safehouse's."""
    command = parse_unit(unit_text)["ExecStart"][-1].split()
    assert command[0] == "/opt/safehouse/bin/safehouse", command
    return [str(VENV_BIN / "safehouse"), *command[1:]]


def run(unit_text: str, tmp_path: Path) -> tuple[dict[str, str], Result]:
    payload, daemon = rehearse(unit_text, tmp_path,
                               [[str(VENV_BIN / "python"), "-c", PAYLOAD], exec_start(unit_text)],
                               config_files={"config.toml": CONFIG}, fake_gpio_label="pinctrl-bcm2711")
    assert payload.rc == 0, payload.stderr
    return stages(payload), daemon


def without(text: str, *prefixes: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.startswith(prefixes)) + "\n"


def with_line(text: str, after: str, line: str) -> str:
    return re.sub(rf"^({re.escape(after)}.*)$", rf"\1\n{line}", text, count=1, flags=re.M)


# Before issue 14: no working directory (so /, read-only), and ProcSubset=pid.
def before_issue_14(text: str) -> str:
    return with_line(without(text, "WorkingDirectory=", "Environment=LG_WD="),
                     "ProtectProc=", "ProcSubset=pid")


def test_the_shipped_unit_lets_lgpio_gpiozero_and_the_daemon_reach_the_gpiochip(tmp_path: Path) -> None:
    started = time.perf_counter()
    seen, daemon = run(UNIT.read_text(), tmp_path)
    who = seen["who"]
    assert who.startswith("ok uid=") and "uid=0 " not in who and who.endswith("cwd=/run/safehouse"), who
    assert seen["root_fs"].startswith("OSError: [Errno 30] Read-only file system"), seen  # strict
    assert seen["state_dir"] == "ok written", seen
    assert seen["lgpio"] == "ok lgpio", seen
    assert seen["cpuinfo"] == "ok True", seen
    # x86's /proc/cpuinfo was read and has no Pi revision: gpiozero's own words for "not a Pi".
    assert seen["board"].startswith("PinUnknownPi: unable to locate Pi revision"), seen
    assert seen["gpiozero_factory"].startswith("PinUnknownPi"), seen
    err = "\n".join(daemon.stderr)
    assert daemon.rc == 1, err
    assert "safehouse: cannot open the Raspberry Pi GPIO /dev/gpiochip0 through lgpio" in err, err
    assert "can not open gpiochip" in err, err  # lgpio's gpiochip_open: as far as x86 goes
    assert "lgd-nfy" not in err and "/proc" not in err
    print(f"rehearsal of the shipped unit: {time.perf_counter() - started:.1f} s")


def test_the_unit_as_it_was_stops_the_gpio_at_the_fifo_and_at_proc(tmp_path: Path) -> None:
    seen, daemon = run(before_issue_14(UNIT.read_text()), tmp_path)
    assert seen["who"].endswith("cwd=/"), seen
    assert re.fullmatch(r"FileNotFoundError: \[Errno 2\] No such file or directory: '\.lgd-nfy-?\d+'",
                        seen["lgpio"]), seen
    assert seen["board"] == "FileNotFoundError: [Errno 2] No such file or directory: '/proc/cpuinfo'", seen
    err = "\n".join(daemon.stderr)
    assert daemon.rc == 1, err
    assert "safehouse: cannot load lgpio for the Raspberry Pi GPIO (FileNotFoundError" in err, err
    assert "lgpio needs a writable working directory for its .lgd-nfy FIFO" in err, err
    assert "gpiochip0" not in err  # it never got there


@pytest.mark.parametrize("change", ["no working directory", "ProcSubset=pid"])
def test_each_old_line_alone_breaks_the_rehearsal(tmp_path: Path, change: str) -> None:
    text = UNIT.read_text()
    if change == "no working directory":
        seen, daemon = run(without(text, "WorkingDirectory=", "Environment=LG_WD="), tmp_path)
        assert seen["lgpio"].startswith("FileNotFoundError"), seen
        assert "lgd-nfy" in "\n".join(daemon.stderr)
    else:
        seen, daemon = run(with_line(text, "ProtectProc=", "ProcSubset=pid"), tmp_path)
        assert seen["lgpio"] == "ok lgpio", seen
        assert seen["board"].endswith("'/proc/cpuinfo'") and seen["board"].startswith("FileNotFoundError")
        assert seen["gpiozero_factory"].startswith("FileNotFoundError"), seen
        # The daemon stops before the chip, naming the unit (not a wrong [gpio] pin at first claim).
        err = "\n".join(daemon.stderr)
        assert daemon.rc == 1, err
        assert ("safehouse: cannot identify the Raspberry Pi board: gpiozero reads /proc/device-tree "
                "or /proc/cpuinfo (FileNotFoundError") in err, err
        assert "the unit must not set ProcSubset=pid" in err and "gpiochip0" not in err, err


def test_the_selftest_unit_lets_lgpio_and_gpiozero_work_too(tmp_path: Path) -> None:
    """The daily self-test runs in its own unit: the same GPIO stack must get as far there."""
    (payload,) = rehearse(SELFTEST.read_text(), tmp_path, [[str(VENV_BIN / "python"), "-c", PAYLOAD]])
    assert payload.rc == 0, payload.stderr
    seen = stages(payload)
    assert seen["who"].endswith("cwd=/run/safehouse-selftest") and "uid=0 " not in seen["who"], seen
    assert seen["lgpio"] == "ok lgpio", seen
    assert seen["board"].startswith("PinUnknownPi: unable to locate Pi revision"), seen


SIM_CONFIG = """[device]
id = "SH-REHEARSAL"
precinct = "test"
hardware = "sim"
state_dir = "/var/lib/safehouse"

[control]
socket = "/run/safehouse/control.sock"

[microphone]
pre_roll = 1.0
"""

# The unit's daemon, started from its ExecStart (argv), then `safehouse selftest --json` through
# it as the same user. MemoryDenyWriteExecute= is the kernel's PR_SET_MDWE, which the rig does
# not apply: set here before the daemon starts, so it and its capture process inherit it.
SIM_PAYLOAD = r"""
import ctypes, json, subprocess, sys, time
mdwe = sys.argv[1] == "yes"
if mdwe and ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE
    print(json.dumps({"mdwe": "unavailable"}), flush=True)
    sys.exit()
command = sys.argv[2:]
cli = [command[0], *command[1:3]]
daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
try:
    for _ in range(300):
        if daemon.poll() is not None or subprocess.run([*cli, "status"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    res = subprocess.run([*cli, "selftest", "--json"], capture_output=True, text=True, timeout=60)
    print(json.dumps({"mdwe": mdwe, "selftest": res.stdout, "selftest_err": res.stderr}), flush=True)
finally:
    daemon.terminate()
    log = daemon.communicate(timeout=15)[1]  # a few KB: the pipe never fills
print(json.dumps({"daemon_rc": daemon.returncode, "log": log[-4000:]}), flush=True)
"""


def rehearse_sim_kiosk(unit_text: str, tmp_path: Path) -> dict[str, object]:
    mdwe = parse_unit(unit_text).get("MemoryDenyWriteExecute", ["no"])[-1]
    (payload,) = rehearse(unit_text, tmp_path,
                          [[str(VENV_BIN / "python"), "-c", SIM_PAYLOAD, mdwe, *exec_start(unit_text)]],
                          config_files={"config.toml": SIM_CONFIG})
    assert payload.rc == 0, payload.stderr
    seen: dict[str, object] = {}
    for line in payload.stdout:
        if line.startswith("{"):
            seen.update(json.loads(line))
    if seen.get("mdwe") == "unavailable":
        unavailable("this kernel has no PR_SET_MDWE (Linux >= 6.3): cannot apply MemoryDenyWriteExecute=")
    return seen


def test_the_sim_kiosk_in_the_units_view_hears_its_microphone_and_takes_a_snapshot(tmp_path: Path) -> None:
    """Camera and microphone paths in the unit's view: the microphone's capture process (a child
    started with `python -m`), PortAudio/ALSA on the fake device, MemoryDenyWriteExecute, the
    state dir for evidence and the control socket in the RuntimeDirectory, as the unit's user."""
    seen = rehearse_sim_kiosk(UNIT.read_text(), tmp_path)
    log = str(seen["log"])
    assert seen["mdwe"] is True, seen  # the shipped unit keeps MemoryDenyWriteExecute=yes
    report = json.loads(str(seen["selftest"]) or "{}")
    assert report, f"no selftest answer: {seen['selftest_err']}\ndaemon log:\n{log}"
    checks = {c["name"]: c for c in report["checks"]}
    assert report["through_daemon"] is True and report["ran_as"]["user"] == "safehouse", report
    assert checks["microphone"]["ok"], checks["microphone"]
    assert checks["microphone"]["detail"].startswith("'default' (native 16000 Hz, opened at 16000 Hz): ")
    assert checks["camera"]["ok"] and checks["camera"]["detail"].startswith("snapshot 1280x720"), checks
    assert seen["daemon_rc"] == 0 and "stopped cleanly" in log, log


def test_a_unit_without_its_runtime_directory_stops_the_kiosk_in_the_rehearsal(tmp_path: Path) -> None:
    """ProtectSystem=strict and no RuntimeDirectory=: /run/safehouse does not exist, so the
    working directory (and the control socket in it) cannot be had; systemd would refuse to
    start the process (status 200/CHDIR), and the rig says so before running anything."""
    text = without(UNIT.read_text(), "RuntimeDirectory=")
    with pytest.raises(AssertionError, match="cannot enter the working directory /run/safehouse"):
        rehearse_sim_kiosk(text, tmp_path)
    # Keep the working directory elsewhere: the control socket still has nowhere to go.
    text = without(text, "WorkingDirectory=", "Environment=LG_WD=")
    (tmp_path / "2").mkdir()
    seen = rehearse_sim_kiosk(text, tmp_path / "2")
    assert seen["daemon_rc"] != 0, seen
    assert ("cannot listen on control socket /run/safehouse/control.sock: Read-only file system"
            in str(seen["log"])), seen["log"]


SPOOL_CONFIG = """[device]
id = "SH-REHEARSAL"
precinct = "test"
hardware = "sim"
state_dir = "/var/lib/safehouse"

[control]
socket = "/run/safehouse/control.sock"

[camera]
enabled = false

[microphone]
enabled = false
"""

# First run: the state partition unusable (the daemon's user takes its own write permission
# away, as a card gone read-only does) and no broker: a press is accepted from memory and kept
# in the runtime directory; then the daemon is killed (-9). Second run, after systemd's part:
# the partition works again, and the kept alarm must be taken back into the outbox.
SPOOL_PAYLOAD = r"""
import json, os, signal, subprocess, sys, time
step, command = sys.argv[1], sys.argv[2:]
cli = [command[0], *command[1:3]]
os.chmod("/var/lib/safehouse", 0o500 if step == "first" else 0o750)
daemon = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
out = {}
try:
    for _ in range(300):
        if daemon.poll() is not None or subprocess.run([*cli, "status"], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    ask = ["press", "--json"] if step == "first" else ["events", "--json"]
    out[ask[0]] = subprocess.run([*cli, *ask], capture_output=True, text=True, timeout=30).stdout
    out["kept"] = sorted(n for n in os.listdir("/run/safehouse") if n.startswith("unsent-alarm-"))
finally:
    daemon.send_signal(signal.SIGKILL if step == "first" else signal.SIGTERM)
    log = daemon.communicate(timeout=15)[1]  # a few KB: the pipe never fills
out.update(daemon_rc=daemon.returncode, log=log[-4000:])
print(json.dumps(out), flush=True)
"""


def crash_with_an_unsent_alarm(unit_text: str, tmp_path: Path, between: Between) -> tuple[str, list[str]]:
    """(the event id of the alarm kept in the runtime directory, the event ids the next run has)."""
    command = [str(VENV_BIN / "python"), "-c", SPOOL_PAYLOAD]
    first, second = rehearse(unit_text, tmp_path, [[*command, "first", *exec_start(unit_text)], between,
                                                   [*command, "second", *exec_start(unit_text)]],
                             config_files={"config.toml": SPOOL_CONFIG})
    assert first.rc == 0 and second.rc == 0, first.stderr + second.stderr
    before, after = stages(first), stages(second)
    press = json.loads(str(before["press"]) or "{}")
    assert press.get("record") == "memory_only", before
    event_id = press["alarm"]["event_id"]
    assert before["kept"] == [f"unsent-alarm-{event_id}.json"], before
    assert before["daemon_rc"] == -9, before
    assert after["daemon_rc"] == 0, after["log"]
    return event_id, [json.loads(line)["event_id"] for line in str(after["events"]).splitlines()]


@pytest.mark.parametrize("between", [RESTART, STOP_THEN_START], ids=lambda b: b.kind)
def test_an_alarm_kept_in_the_runtime_directory_survives_a_kill_9_and_the_next_start(
        tmp_path: Path, between: Between) -> None:
    """Restart=always brings the daemon back on the same /run/safehouse (and so does a stop and
    a later start): the alarm it could neither write nor deliver is taken back, onto the disk."""
    event_id, stored = crash_with_an_unsent_alarm(UNIT.read_text(), tmp_path, between)
    assert event_id in stored, (event_id, stored)


def test_a_unit_that_lets_systemd_remove_the_runtime_directory_loses_that_alarm(tmp_path: Path) -> None:
    """The unit as it was (no RuntimeDirectoryPreserve=): the automatic restart starts on an
    empty /run/safehouse and the accepted alarm is gone. The line is what keeps it."""
    event_id, stored = crash_with_an_unsent_alarm(without(UNIT.read_text(), "RuntimeDirectoryPreserve="),
                                                  tmp_path, RESTART)
    assert event_id not in stored, stored
