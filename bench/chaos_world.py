"""Everything a chaos run breaks, built from the same real parts as the tests.

The kiosk is the real ``safehouse run`` on simulated hardware with its keypad on a socat
serial pair; the precinct's broker is a real mosquitto with persistence on (as a precinct's
must be: an alarm it acknowledged must survive its own restart); a black hole can take the
broker's port; ``state_dir`` is a small tmpfs so it can really fill up. Faults are applied by
PID, by socket command or by file, never by process name.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.chaos_plan import Step
from safehouse.services.control import ControlError, request
from safehouse.services.storage_errors import read_only
from tests.rig.availability import IN_CI
from tests.rig.blackhole import Blackhole
from tests.rig.broker import Broker
from tests.rig.daemon import CLI, DaemonProcess
from tests.rig.disk import TmpfsError, fill, garbage_header, mount_tmpfs, remount, unmount
from tests.rig.kiosk_config import write_config
from tests.rig.serial_pty import SerialRig

_LOG = logging.getLogger("chaos")
DEVICE, PRECINCT = "SH-CHAOS-0001", "chaos"
VOLUNTEER = "chaos-v1"
STATE_MB = 48  # the tmpfs behind state_dir: small enough to fill in a blink


class World:
    """``seed`` makes what the world breaks the same on every run (the bytes a garbled header
    gets); ``pin`` is the volunteer's throwaway PIN; ``capture`` turns the camera and the
    microphone on (the chaos run) or off (the power-cut loop, which restarts the daemon often)."""

    def __init__(self, folder: Path, *, seed: int = 0, pin: str = "", capture: bool = True) -> None:
        self.folder = folder
        self.broker = Broker(folder / "broker", log_types=("error", "warning", "notice"), persistence=True)
        self.blackhole: Blackhole | None = None
        (folder / "tty").mkdir()
        self.keypad = SerialRig(folder / "tty")
        self.state = folder / "state"
        self.state.mkdir()
        self.quota = _mount_tmpfs(self.state, STATE_MB)
        self.seed = seed
        self.capture = capture
        self.pin = pin or f"{secrets.randbelow(10**6):06d}"  # a throwaway PIN, made for this run only
        self.daemon: DaemonProcess | None = None
        self.restarts = 0
        self.start_failures = 0
        self.start_limit = 60.0  # seconds of refused starts before the kiosk is given up on
        self.applied: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()  # people actions the kiosk could not take then
        self._filler = self.state / "filler.bin"
        self._lock = threading.Lock()  # the fault thread and the people thread share the daemon

    # --- set up and tear down ------------------------------------------------------------

    def start_broker(self) -> None:
        """The broker first, so the precinct can subscribe before the kiosk's first event."""
        self.broker.start()

    def start_kiosk(self) -> None:
        self.keypad.plug()
        self.config = write_config(self.folder, _extra(self.broker.url, self.keypad.kiosk,
                                                       self.folder / "volunteers.toml", self.capture),
                                   capture=self.capture, id=DEVICE, precinct=PRECINCT)
        self._enrol()
        self._start_daemon()
        self.keys(f"{self.pin}*1#")  # the volunteer checks in for duty

    def close(self) -> None:
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                self.daemon.stop(timeout=10)
            self.daemon.kill()
        if self.blackhole is not None:
            self.blackhole.stop()
        self.broker.stop()
        self.keypad.unplug()
        if self.quota:
            unmount(self.state)

    def heal(self, *, start: bool = True) -> None:
        """Mend every fault still open (each ends before the run does; this is a safety net),
        and start the daemon if it is down (unless ``start`` is false)."""
        for kind in ("broker_blackhole", "broker_stop", "camera_hang", "keypad_unplug", "disk_full",
                     "state_readonly"):
            self._end(kind)
        if start and (self.daemon is None or self.daemon.proc is None or self.daemon.proc.poll() is not None):
            self._start_daemon()

    def kill(self) -> None:
        """kill -9 of the daemon, by PID."""
        if self.daemon is not None:
            self.daemon.kill()

    def restart(self) -> None:
        """Start the daemon again after a kill, as systemd's Restart= would."""
        self._start_daemon()
        self.restarts += 1

    def _enrol(self) -> None:
        res = subprocess.run([*CLI, "--config", str(self.config), "volunteer", "add", VOLUNTEER,
                              "--name", "Chaos Volunteer", "--pin-stdin"], input=self.pin + "\n",
                             capture_output=True, text=True, timeout=60, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"could not enrol the chaos volunteer: {res.stderr}")

    def _start_daemon(self) -> None:
        """Start the kiosk as systemd would (Restart=always): again and again until it runs, for
        ``start_limit`` seconds."""
        deadline = time.monotonic() + self.start_limit
        refused = 0
        while True:
            attempt = DaemonProcess(self.config, self.folder / "ctl.sock")
            try:
                self.daemon = attempt.start(timeout=30)
                return
            except pytest.fail.Exception as exc:
                attempt.kill()  # one that runs but never answers must not run beside the next one
                self.start_failures += 1
                refused += 1
                if time.monotonic() > deadline:
                    last = "\n".join(str(exc).splitlines()[-3:])
                    raise RuntimeError(f"the kiosk did not answer `safehouse status` after its start, for "
                                       f"{self.start_limit:g} s ({refused} attempt(s)); its last words:\n"
                                       f"{last}") from None
                (_LOG.warning if refused == 1 else _LOG.info)(
                    "the kiosk did not come up; retrying in 1 s like systemd would")
                time.sleep(1.0)

    # --- the people's actions -------------------------------------------------------------

    def call(self, cmd: str, **args: Any) -> Any:
        """One control command; None (and counted) when the kiosk could not take it right now."""
        try:
            return request(self.folder / "ctl.sock", cmd, timeout=15.0, **args)
        except ControlError as exc:
            self.failed[cmd] += 1
            _LOG.info("%s not taken: %s", cmd, exc)
            return None

    def keys(self, text: str) -> bool:
        """Type on the real serial keypad, key by key; False while its cable is out."""
        try:
            for key in text:
                self.keypad.send(key.encode())
                time.sleep(0.01)
        except (OSError, RuntimeError) as exc:
            self.failed["keypad"] += 1
            _LOG.info("keys not typed: %s", exc)
            return False
        return True

    # --- faults ---------------------------------------------------------------------------

    def apply(self, step: Step) -> None:
        with self._lock:
            if step.kind.startswith("end_"):
                self._end(step.kind[4:])
            else:
                self._begin(step)
            self.applied[step.kind] += 1

    def _begin(self, step: Step) -> None:
        match step.kind:
            case "kill_daemon":
                if self.daemon is not None:
                    self.daemon.kill()  # SIGKILL by PID
            case "broker_stop":
                self.broker.stop()
            case "broker_blackhole":
                self.broker.stop()
                self.blackhole = Blackhole(self.broker.port).start()
            case "camera_hang":
                self.call("simulate", part="camera", fault="hang")
            case "keypad_unplug":
                self.keypad.unplug()
            case "disk_full":
                if self.quota:
                    fill(self._filler)
            case "state_readonly":  # the card went read-only under a running kiosk, which restarted
                if self.quota:
                    running = self.daemon is not None and self.daemon.proc is not None \
                        and self.daemon.proc.poll() is None
                    if running and self.daemon is not None:
                        self.daemon.kill()  # tmpfs refuses `remount,ro` while files are open for writing
                    remount(self.state, read_only=True)
                    if running:
                        self._start_daemon()
            case "outbox_corrupt" | "wal_lost":
                if self.daemon is not None:
                    self.daemon.kill()
                damage_outbox(self.state, step.kind, self.quota, seed=self.seed + self.applied[step.kind])
            case "clock_jump":  # the kiosk keeps the step across restarts (its SimClock file)
                self.call("simulate", part="clock", fault="jump", seconds=float(step.arg))

    def _end(self, kind: str) -> None:
        match kind:
            case "kill_daemon" | "outbox_corrupt" | "wal_lost":
                self.restart()
            case "state_readonly":
                if self.quota and read_only(self.state):
                    remount(self.state, read_only=False)
            case "broker_stop":
                self.broker.start()
            case "broker_blackhole":
                if self.blackhole is not None:
                    self.blackhole.stop()
                    self.blackhole = None
                self.broker.start()
            case "camera_hang":
                self.call("simulate", part="camera", fault="none")
            case "keypad_unplug":
                if not self.keypad.is_plugged:
                    self.keypad.plug()
            case "disk_full":
                self._filler.unlink(missing_ok=True)


def damage_outbox(state: Path, kind: str, quota: bool, *, seed: int = 0) -> None:
    """What a failing card does to a stopped kiosk's outbox: a garbled header (the file is then
    not a database at all; the daemon quarantines it and salvages every row behind the header),
    or a lost WAL (commits since the last checkpoint gone; alarms are checkpointed when written)."""
    remount_later = quota and read_only(state)  # the card is read-only too: damage it anyway
    if remount_later:
        remount(state, read_only=False)
    try:
        if kind == "wal_lost":
            (state / "outbox.db-wal").unlink(missing_ok=True)
        elif (state / "outbox.db").exists():
            garbage_header(state / "outbox.db", seed)
    except OSError as exc:  # a full disk does not stop an overwrite in place nor an unlink
        _LOG.warning("could not damage the outbox (%s): %s", kind, exc)
    finally:
        if remount_later:
            remount(state, read_only=True)


def _extra(url: str, port: Path, volunteers: Path, capture: bool) -> str:
    lines = ["[broker]", f'url = "{url}"', "keepalive = 5",
             "[keypad]", f'port = "{port}"', f'volunteers = "{volunteers}"', "lockout_seconds = 5",
             "[telemetry]", "interval = 5"]
    if capture:
        lines += ["[camera]", "enabled = true", "offsets = [0.0, 1.0]", "width = 320", "height = 240",
                  "timeout = 2.0",
                  "[microphone]", "enabled = true", "pre_roll = 2.0", "post_roll = 3.0",
                  "[evidence]", "quota_mb = 8", "hard_limit_mb = 16"]
    return "\n".join([*lines, ""])


def _mount_tmpfs(path: Path, megabytes: int) -> bool:
    """A size-limited tmpfs on ``path``; without root, a failure in CI and a warning elsewhere."""
    try:
        mount_tmpfs(path, megabytes)
    except TmpfsError as exc:
        if IN_CI:
            raise
        _LOG.warning("%s; disk_full faults are skipped", exc)
        return False
    return True
