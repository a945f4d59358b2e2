"""`safehouse accept` on a simulated kiosk, driven through its prompts like a technician would.

The real CLI runs as a subprocess: it starts its own `safehouse run` (sim) with a NOTIFY_SOCKET
it binds, waits for READY=1, and asks for hands-on steps on stdout. The test plays the
technician: it answers each `>>> [TAG]` prompt with the `safehouse` command that does the
same on simulated hardware (press, keys, simulate lid/keypad/microphone), or types s/f, or
does nothing (the step times out). Then it reads the report the acceptance wrote.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from safehouse.device.cli.acceptance import scan_journal
from safehouse.device.cli.acceptance_service import AcceptanceError, Systemd
from safehouse.device.runtime.acceptance_probe import jpeg_size
from tests.rig.daemon import DaemonProcess, cli
from tests.rig.kiosk_config import write_config

CLI = [sys.executable, "-m", "safehouse.device.cli.main"]
PIN = "2468"
KIOSK = ("[camera]\nwidth = 640\nheight = 480\n[microphone]\npre_roll = 1.0\npost_roll = 1.0\n"
         "[gpio]\ntamper = 5\n")
TECHNICIAN: dict[str, Any] = {
    "button": ["press", "--hold", "1"],
    "pin": ["keys", f"{PIN}#"],
    "lid-open": ["simulate", "lid", "open"],
    "lid-close": ["simulate", "lid", "close"],
    "keypad-unplug": ["simulate", "keypad", "unplug"],
    "keypad-replug": ["simulate", "keypad", "replug"],
    "mic-unplug": ["simulate", "microphone", "unplug"],
    "mic-replug": ["simulate", "microphone", "replug"],
}
STEPS = ["restart", "selftest", "acoustic-loop", "snapshots", "recording", "button", "pin", "lid",
         "keypad-replug", "mic-replug", "journal", "stayed-up"]


def _kiosk(folder: Path) -> Path:
    config = write_config(folder, KIOSK, capture=True)
    enrolled = cli(config, "volunteer", "add", "v001", "--name", "Test Technician", "--pin-stdin",
                    stdin=f"{PIN}\n")
    assert enrolled.returncode == 0, enrolled.stderr
    return config


def _accept(config: Path, folder: Path, answers: dict[str, Any], *extra: str,
            on_prompt: Any = None) -> tuple[int, str, list[str]]:
    """Run `safehouse accept`, answering its prompts; return (exit status, stdout, prompts seen)."""
    proc = subprocess.Popen([*CLI, "--config", str(config), "accept", "--report-dir", str(folder / "reports"),
                             "--sim-log", str(folder / "journal.log"), "--record-seconds", "2",
                             "--ready-timeout", "30", *extra],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    guard = threading.Timer(240, proc.kill)
    guard.start()
    out, prompts = [], []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        for line in proc.stdout:
            out.append(line)
            found = re.match(r">>> \[([a-z-]+)\]", line)
            if not found:
                continue
            tag = found.group(1)
            prompts.append(tag)
            if on_prompt is not None:
                on_prompt(tag)
            answer = answers.get(tag)
            if isinstance(answer, list):
                done = cli(config, *answer)
                assert done.returncode == 0, f"{answer}: {done.stderr}"
            elif isinstance(answer, str):
                proc.stdin.write(answer + "\n")
                proc.stdin.flush()
        return proc.wait(30), "".join(out), prompts
    finally:
        guard.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _report(folder: Path) -> tuple[dict[str, Any], str]:
    [json_path] = sorted((folder / "reports").glob("acceptance-*.json"))
    [text_path] = sorted((folder / "reports").glob("acceptance-*.txt"))
    return json.loads(json_path.read_text()), text_path.read_text()


def test_accept_passes_a_healthy_kiosk_driven_through_every_prompt(short_dir: Path) -> None:
    config = _kiosk(short_dir)
    code, out, prompts = _accept(config, short_dir, TECHNICIAN, "--step-timeout", "30")
    assert code == 0, out
    assert prompts == list(TECHNICIAN)
    report, text = _report(short_dir)
    assert report["ok"] is True and report["failed"] == []
    assert report["device"]["daemon_version"] and len(report["device"]["boot_id"]) >= 32
    steps = {s["name"]: s for s in report["steps"]}
    assert list(steps) == STEPS
    assert all(s["status"] in ("pass", "warn") for s in steps.values()), steps
    daemon_pid = steps["selftest"]["data"]["ran_as"]["pid"]  # the checks ran in the process that said READY
    assert f"READY=1 from pid {daemon_pid}:" in steps["restart"]["detail"]
    assert [c["name"] for c in steps["selftest"]["data"]["checks"]][:3] == ["light box", "panic button",
                                                                           "microphone"]
    shots = steps["snapshots"]["data"]["shots"]
    assert [(s["width"], s["height"]) for s in shots] == [(640, 480)] * 3
    assert steps["recording"]["data"]["frames"] == 2 * 16000
    assert "panic event" in steps["button"]["detail"] and "released" in steps["button"]["detail"]
    assert "ack event" in steps["pin"]["detail"]
    assert "tamper event" in steps["lid"]["detail"] and "tamper_restored" in steps["lid"]["detail"]
    assert "keypad_lost" in steps["keypad-replug"]["detail"]
    assert "keypad_restored" in steps["keypad-replug"]["detail"]
    assert "the kiosk noticed: the default input" in steps["mic-replug"]["detail"]
    assert steps["mic-replug"]["detail"].endswith("the kiosk hears it again")
    assert "none with a known failure string" in steps["journal"]["detail"]
    assert text.startswith("Safe House kiosk acceptance: ACCEPTED")
    assert "every required step passed" in text and "SH-TEST-0001" in text
    assert "\n           ok   camera: snapshot 640x480" in text
    # what the precinct saw: the alarm, acknowledged on the keypad, resolved by the acceptance
    events = [json.loads(line) for line in cli(config, "events", "--json").stdout.splitlines()]
    types = [e["type"] for e in events]
    for expected in ("selftest", "panic", "ack", "resolved", "tamper", "tamper_restored",
                     "keypad_lost", "keypad_restored"):
        assert expected in types, types
    [resolved] = [e for e in events if e["type"] == "resolved"]
    assert resolved["data"]["outcome"] == "cancelled" and resolved["data"]["by"] == "acceptance"
    assert not (short_dir / "ctl.sock").exists()  # the daemon it started is stopped again


def test_accept_fails_naming_the_step_and_why(short_dir: Path) -> None:
    """A known failure string in the journal, a step that did not work, one nobody does, one
    skipped: exit 1, and the report says which and why."""
    config = _kiosk(short_dir)
    answers = {**TECHNICIAN, "button": "s", "lid-close": "f", "keypad-unplug": None, "mic-unplug": "s"}

    def journal_line(tag: str) -> None:
        if tag == "lid-open":  # what the daemon logs under a unit whose working directory is read-only
            with (short_dir / "journal.log").open("a") as log:
                log.write("FileNotFoundError: [Errno 2] No such file or directory: '.lgd-nfy-3'\n")

    code, out, prompts = _accept(config, short_dir, answers, "--step-timeout", "4", on_prompt=journal_line)
    assert code == 1, out
    assert "keypad-replug" not in prompts  # the unplug timed out: no replug prompt
    report, text = _report(short_dir)
    assert report["ok"] is False
    assert report["failed"] == ["button", "lid", "keypad-replug", "mic-replug", "journal"]
    steps = {s["name"]: s for s in report["steps"]}
    assert steps["keypad-replug"]["detail"] == "keypad-unplug: nothing seen within 4 s"
    assert steps["mic-replug"]["status"] == "skip"
    assert steps["lid"]["detail"] == "lid-close: the technician reported that it did not work"
    assert "lgd-nfy" in steps["journal"]["detail"]
    assert steps["button"] | {"seconds": 0} == {
        "name": "button", "title": "panic button press and hold", "status": "skip",
        "detail": "skipped by the technician", "required": True, "seconds": 0, "data": {}}
    assert "ack event" in steps["pin"]["detail"]  # a test alarm stood in for the skipped press
    assert "a TEST alarm was raised for the PIN to acknowledge" in out
    assert text.startswith("Safe House kiosk acceptance: NOT ACCEPTED")
    assert "; keypad unplugged and replugged: keypad-unplug: nothing seen within 4 s;" in text
    [summary] = [line for line in out.splitlines() if line.startswith("FAILED: ")]
    assert "journal since the restart: 1 known failure line(s)" in summary and "'.lgd-nfy-3'" in summary
    assert out.splitlines()[-1].startswith("report: ")


def test_selftest_with_the_daemon_stopped_says_it_proves_nothing(short_dir: Path) -> None:
    config = write_config(short_dir)
    res = cli(config, "selftest")
    assert res.returncode == 0, res.stderr
    user = pwd.getpwuid(os.getuid()).pw_name
    warning = f"as user {user} (uid {os.getuid()}), OUTSIDE the safehouse unit's sandbox"
    assert warning in res.stderr and "NOT proof that the unit works" in res.stderr
    assert res.stdout.splitlines()[-1].startswith("WARNING: the daemon is not running")
    as_json = cli(config, "selftest", "--json")
    body = json.loads(as_json.stdout)
    assert body["through_daemon"] is False and "NOT proof" in body["warning"]
    assert body["ran_as"]["user"] == user and body["ran_as"]["pid"] != os.getpid()
    refused = cli(config, "selftest", "--daemon-only")
    assert refused.returncode == 1 and "not running" in refused.stderr and refused.stdout == ""


class Systemctl:
    """What systemctl/journalctl print on a Pi (systemd is not PID 1 here, so they cannot run)."""

    def __init__(self, states: list[str], journal: str = "") -> None:
        self.calls: list[list[str]] = []
        self._states, self._journal = states, journal

    def __call__(self, argv: Any) -> subprocess.CompletedProcess[str]:
        argv = list(argv)
        self.calls.append(argv)
        out = ""
        if argv[:2] == ["systemctl", "show"]:
            out = self._states.pop(0) if len(self._states) > 1 else self._states[0]
        elif argv[:5] == ["journalctl", "-n", "1", "-o", "export"]:
            out = "__CURSOR=s=0af3;i=1c2\n__REALTIME_TIMESTAMP=1796000000000000\nMESSAGE=x\n"
        elif argv[0] == "journalctl":
            out = self._journal
        return subprocess.CompletedProcess(argv, 0, out, "")


def _show(active: str, sub: str, pid: int = 812, restarts: int = 0, run: str = "9f1c") -> str:
    return (f"ActiveState={active}\nSubState={sub}\nResult=success\nStatusText=alarm idle, link online\n"
            f"MainPID={pid}\nNRestarts={restarts}\nInvocationID={run}\n")


def test_systemd_restart_waits_for_ready_and_reads_the_journal_from_before_the_restart() -> None:
    line = "safehouse.service: DeviceAllow=/dev/dma_heap rw: /dev/dma_heap is not a device, ignoring."
    before = _show("active", "running", pid=640, run="77aa")  # the old run, still shown just after
    tool = Systemctl([before, before, _show("activating", "start", pid=0), _show("active", "running")],
                     journal=line + "\n")
    unit = Systemd("safehouse", run=tool)
    unit.restart()
    assert unit.wait_ready(10) == (True, "READY=1 seen by systemd: alarm idle, link online")
    assert tool.calls[2:4] == [["systemctl", "daemon-reload"],
                               ["systemctl", "restart", "--no-block", "safehouse"]]
    assert scan_journal(unit.journal()) == [line]
    assert "--after-cursor=s=0af3;i=1c2" in tool.calls[-1]
    assert unit.still_up() == (True, "the same process (MainPID 812) ran the whole acceptance, no restarts")
    tool._states = [_show("active", "running", pid=977, restarts=1)]
    up, why = unit.still_up()
    assert not up and "restarted or stopped during the acceptance" in why


def test_systemd_unit_that_fails_to_start_is_reported_not_waited_for() -> None:
    failed = _show("activating", "auto-restart").replace("Result=success", "Result=exit-code")
    unit = Systemd("safehouse", run=Systemctl([_show("failed", "failed", run="77aa"), failed]))
    unit.restart()
    ok, why = unit.wait_ready(30)
    assert not ok and why == ("the unit failed (activating/auto-restart, result exit-code); "
                              "journalctl -u safehouse -e says why")


def test_systemd_without_systemctl_says_so() -> None:
    def missing(argv: Any) -> subprocess.CompletedProcess[str]:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    with pytest.raises(AcceptanceError, match=r"journalctl failed: .*\(is this a systemd machine\?\)"):
        Systemd("safehouse", run=missing).restart()


def test_jpeg_size_is_read_from_the_frame_header() -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (320, 176), (200, 30, 30)).save(buf, "JPEG", quality=80, progressive=True)
    assert jpeg_size(buf.getvalue()) == (320, 176)
    assert jpeg_size(b"\x89PNG\r\n") is None
    assert jpeg_size(buf.getvalue()[:20]) is None


def test_accept_in_simulation_never_borrows_a_daemon_it_did_not_start(short_dir: Path) -> None:
    """A daemon already running is not restarted under the technician's feet: refused, said why."""
    config = write_config(short_dir)
    other = DaemonProcess(config, short_dir / "ctl.sock").start()
    try:
        code, out, prompts = _accept(config, short_dir, {}, "--step-timeout", "1")
        assert "NOT ACCEPTED" in out
        assert code == 1 and prompts == []
        report, _text = _report(short_dir)
        steps = {s["name"]: s for s in report["steps"]}
        assert steps["restart"]["status"] == "fail"
        assert steps["restart"]["detail"].startswith("a kiosk daemon already answers on")
        assert steps["selftest"]["status"] == "not run" and steps["stayed-up"]["status"] == "fail"
        assert other.status()["alarm"]["state"] == "idle"  # still there, untouched
    finally:
        other.kill()


def test_accept_help_explains_every_step_and_option(short_dir: Path) -> None:
    res = cli(write_config(short_dir), "accept", "--help")
    assert res.returncode == 0
    for step in STEPS:
        assert f"\n  {step} " in res.stdout, step
    for option in ("--report-dir", "--record-seconds", "--snapshots", "--ready-timeout", "--step-timeout",
                   "--selftest-timeout", "--service", "--unit", "--sim-log"):
        assert option in res.stdout
    for needle in ("is not a device", "lgd-nfy", "Invalid sample rate", "Operation not permitted",
                   "Failed to unshare"):
        assert needle in res.stdout


def test_accept_reports_a_kiosk_that_does_not_start_with_the_daemon_s_last_words(short_dir: Path) -> None:
    (short_dir / "run").write_text("a file where the socket's folder should be\n")
    config = write_config(short_dir, f'[control]\nsocket = "{short_dir / "run" / "ctl.sock"}"\n')
    config.write_text(config.read_text().replace(f'[control]\nsocket = "{short_dir / "ctl.sock"}"\n', ""))
    code, out, prompts = _accept(config, short_dir, {}, "--step-timeout", "1")
    assert code == 1 and prompts == [], out
    report, text = _report(short_dir)
    assert "NOT ACCEPTED" in text
    restart = report["steps"][0]
    assert restart["name"] == "restart" and restart["status"] == "fail"
    assert restart["detail"].startswith("the daemon exited with status 1 before READY=1 | ")
    assert "cannot listen on control socket" in restart["detail"]
    assert [s["status"] for s in report["steps"][1:-2]] == ["not run"] * 9
