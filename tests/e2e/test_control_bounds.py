"""The control socket of a real daemon under abuse: client limit, idle timeout, nesting, no threads.

The daemon runs as a subprocess (tests/rig/daemon.py) and is asked with the real CLI. The
16 connections that fill its slots come from a process running as another user (uid 65534,
in the socket's group), as a compromised program in the group would: root's `safehouse
status` still gets the slot kept for root.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from safehouse.device.core.errors import ControlError
from safehouse.services.control import ControlServer, request
from tests.rig.availability import unavailable
from tests.rig.daemon import DaemonProcess
from tests.rig.kiosk_config import write_config

NOBODY = 65534


def control_config(folder: Path, **control: object) -> Path:
    path = write_config(folder)
    lines = "".join(f"\n{k} = {v}" for k, v in control.items())
    sock_line = f'socket = "{folder / "ctl.sock"}"'
    path.write_text(path.read_text().replace(sock_line, sock_line + lines))
    return path


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def read_line(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """The one line the daemon sends before closing, or its answer to one request."""
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(path))
    return sock


@pytest.fixture
def daemon(short_dir: Path, request: pytest.FixtureRequest) -> Iterator[DaemonProcess]:
    idle = getattr(request, "param", 2.0)
    proc = DaemonProcess(control_config(short_dir, idle_timeout=idle), short_dir / "ctl.sock").start()
    yield proc
    proc.kill()


@pytest.mark.parametrize("daemon", [60.0], indirect=True)  # the 16 stay connected throughout
def test_a_17th_client_is_refused_at_once_while_root_still_gets_status(short_dir: Path,
                                                                       daemon: DaemonProcess) -> None:
    if os.geteuid() != 0:
        unavailable("needs root: the 16 clients run as another user (uid 65534)")
    os.chmod(short_dir, 0o750)  # the socket's group (root here) may reach the 0660 socket
    report_r, report_w = os.pipe()
    release_r, release_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a member of the socket's group, not root
        code = 1
        try:
            os.setgroups([0])
            os.setuid(NOBODY)
            held = [connect(daemon.socket) for _ in range(16)]
            extra = connect(daemon.socket)
            os.write(report_w, read_line(extra) or b"EOF\n")
            os.read(release_r, 1)
            for sock in held:
                sock.sendall(b'{"cmd": "status"}\n')
                os.write(report_w, b"ok\n" if json.loads(read_line(sock))["ok"] else b"refused\n")
            code = 0
        finally:
            os._exit(code)
    with os.fdopen(report_r, "rb") as report:
        line = report.readline()
        answer = json.loads(line)
        assert answer["ok"] is False and answer["error"].startswith("busy: 16 clients"), line
        status = daemon.cli("status", "--json")  # root: the kept slot
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["alarm"]["state"] == "idle"
        os.write(release_w, b"x")
        held = [report.readline() for _ in range(16)]
    assert held == [b"ok\n"] * 16  # the 16 held connections were served all along
    assert os.waitpid(pid, 0)[1] == 0
    assert "Traceback" not in daemon.log.read_text()


def test_half_line_clients_are_timed_out_without_a_thread_each(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None
    before = threads_of(daemon.proc.pid)
    clients = [connect(daemon.socket) for _ in range(100)]
    for sock in clients:
        with contextlib.suppress(BrokenPipeError):  # the refused ones are closed already
            sock.sendall(b'{"cmd": "sta')
    assert threads_of(daemon.proc.pid) <= before  # 500 such clients once took 511 threads
    answers = [read_line(sock) for sock in clients]
    busy = [a for a in answers if a.startswith(b'{"ok": false, "error": "busy:')]
    timed_out = [a for a in answers if b'"timeout: no complete request line within 2 s"' in a]
    assert len(busy) == 100 - 17 and len(timed_out) == 17  # 16 + the slot kept for root
    for sock in clients:
        with contextlib.suppress(ConnectionResetError):  # closed with our half line unread
            assert sock.recv(10) == b""  # closed after its one line
        sock.close()
    assert daemon.status()["alarm"]["state"] == "idle"


def test_nested_json_on_the_socket_gets_an_error_line_and_the_connection_stays_usable(
        daemon: DaemonProcess) -> None:
    with connect(daemon.socket) as sock:
        sock.sendall(b'{"cmd": "status", "x": ' + b"[" * 8000 + b"]" * 8000 + b"}\n")
        answer = json.loads(read_line(sock))
        assert answer["ok"] is False and "too_deep" in answer["error"]
        sock.sendall(b"[" * 20_000 + b"\n")  # over the 16 KiB line limit: answered, then closed
        answer = json.loads(read_line(sock))
        assert answer["ok"] is False and answer["error"].startswith("too_long:")
        assert sock.recv(10) == b""
    with connect(daemon.socket) as sock, sock.makefile("rb") as answers:
        sock.settimeout(10)
        sock.sendall(b'{"cmd": ' + b"{" * 100 + b'\n{"cmd": "status"}\n')
        assert json.loads(answers.readline())["error"].startswith("bad request: too_deep")
        assert json.loads(answers.readline())["ok"] is True
    log = daemon.log.read_text()
    assert "Traceback" not in log and "RecursionError" not in log
    assert max(len(line) for line in log.splitlines()) < 1000


def test_a_client_that_never_reads_its_answers_cannot_pile_them_up_in_the_daemon(short_dir: Path) -> None:
    """Found by testing: one client sending `status` and never reading grew the daemon by ~14 MB a
    minute (every answer kept in its buffer). Now the next request waits until the answer before
    it is taken, so the rest waits in the kernel; the client is closed idle_timeout later."""
    calls: list[int] = []
    answer = "x" * 4096

    def handler(_req: object) -> str:
        calls.append(1)
        return answer

    with ControlServer(short_dir / "c.sock", {"status": handler}, idle_timeout=1.0) as server:
        server.start()
        greedy = connect(server.path)
        greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        greedy.settimeout(5)
        sent = 0
        with contextlib.suppress(OSError):  # closed by the daemon once it stopped taking requests
            while sent < 3000:
                before = len(calls)
                greedy.sendall(b'{"cmd": "status"}\n')
                sent += 1
                deadline = time.monotonic() + 2.0  # the answer is taken at once, or never
                while len(calls) == before and time.monotonic() < deadline:
                    time.sleep(0.001)
                if len(calls) == before:
                    break
        # Without the bound all 3,000 were answered into the daemon's memory (12 MB here).
        assert len(calls) < 300, f"{len(calls)} answers taken from a client that reads none"
        assert sent < 3000
        assert request(server.path, "status") == answer  # everyone else is still served
        data = b""
        with contextlib.suppress(OSError):
            while chunk := greedy.recv(65536):
                data += chunk
        assert data.count(b'"ok": true') <= len(calls)  # what was answered; then closed
        greedy.close()


def _ask_all(path: Path, line: bytes, n: int) -> list[socket.socket]:
    """``n`` connections, each sending ``line`` at once (a script, or several technicians)."""
    socks = [connect(path) for _ in range(n)]
    for sock in socks:
        sock.sendall(line)
    return socks


def _answers_within(socks: list[socket.socket], seconds: float) -> list[dict[str, object] | None]:
    """What each connection got back within ``seconds`` (None: nothing yet)."""
    deadline = time.monotonic() + seconds
    answers: list[dict[str, object] | None] = []
    for sock in socks:
        try:
            line = read_line(sock, timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            line = b""
        answers.append(json.loads(line) if line else None)
    return answers


@pytest.fixture
def camera_daemon(short_dir: Path) -> Iterator[DaemonProcess]:
    """A sim kiosk with its (simulated) camera on and the microphone off."""
    path = write_config(short_dir)
    path.write_text(path.read_text().replace("[camera]\nenabled = false", "[camera]\nenabled = true"))
    proc = DaemonProcess(path, short_dir / "ctl.sock").start()
    yield proc
    proc.kill()


def test_a_hung_camera_holds_no_worker_that_status_press_ack_and_resolve_need(
        camera_daemon: DaemonProcess) -> None:
    """Issue 18 item 14: four `snapshots` requests on a hung camera took all four control workers
    (10 snapshots x 60 s each: up to 11 minutes), and `status` and `press` timed out. A request
    that waits on a part now has its own worker, one at a time; the others are told busy at once."""
    camera_daemon.ok("simulate", "camera", "hang")
    hung = _ask_all(camera_daemon.socket, b'{"cmd": "snapshots", "count": 10, "per_shot": 60}\n', 6)
    answers = _answers_within(hung, 5.0)
    waiting = [a for a in answers if a is None]
    assert len(waiting) == 1, answers  # the one on the camera's worker, waiting on the hung camera
    assert all(a is not None and a["ok"] is False and str(a["error"]).startswith("busy:")
               for a in answers if a is not None), answers
    # While the camera hangs, what a technician needs is answered, each within its usual bound.
    assert request(camera_daemon.socket, "status", timeout=5.0)["alarm"]["state"] == "idle"
    pressed = request(camera_daemon.socket, "press", timeout=5.0)
    assert pressed["accepted"] and pressed["durable"] and pressed["new_alarm"], pressed
    assert request(camera_daemon.socket, "ack", timeout=5.0, by="tech")["alarm"]["state"] == "acknowledged"
    assert request(camera_daemon.socket, "resolve", timeout=5.0, outcome="assistance")["resolved"]
    with pytest.raises(ControlError, match=r"^busy: .*one at a time"):  # the selftest checks the camera too
        request(camera_daemon.socket, "selftest", timeout=5.0)
    for sock in hung:
        sock.close()
    log = camera_daemon.log.read_text()
    assert "Traceback" not in log


def test_a_stalled_core_loop_does_not_hold_the_worker_status_needs(daemon: DaemonProcess) -> None:
    """Requests that wait for the core loop (ack, press, keys...) wait up to 3 s each when it stalls;
    eight of them took two rounds of the four workers, and `status`, which waits for nothing,
    queued behind them: it is what a technician reads to see that the core is stuck."""
    daemon.ok("simulate", "core", "hang", "--seconds", "20")
    acks = _ask_all(daemon.socket, b'{"cmd": "ack", "by": "tech"}\n', 8)
    time.sleep(0.2)  # the acks are with the workers first
    status = request(daemon.socket, "status", timeout=5.0)
    assert status["alarm"]["state"] == "idle"
    for sock in acks:  # each ack waits 3 s for the core: status came back before any of them
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)
    answers = _answers_within(acks, 15.0)
    assert all(a is not None and a["ok"] is False for a in answers), answers  # refused, each in time
    for sock in acks:
        sock.close()


def test_snapshots_on_a_hung_camera_stop_at_the_first_that_times_out(camera_daemon: DaemonProcess) -> None:
    """The camera is not asked again once a snapshot timed out: each later try only waited the
    full per-shot timeout again (10 x 60 s) and left one more thread stuck on the camera."""
    camera_daemon.ok("simulate", "camera", "hang")
    result = request(camera_daemon.socket, "snapshots", count=3, per_shot=0.5, timeout=10.0)
    errors = [shot["error"] for shot in result["shots"]]
    assert len(errors) == 3 and "did not answer within 0.5 s" in errors[0], errors
    assert errors[1:] == ["not taken: the camera did not answer the snapshot before"] * 2, errors
