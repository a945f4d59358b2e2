"""Idle CPU, peak RSS and wake-ups of `safehouse run --sim`, against a bare Python interpreter.

Three daemons run side by side for the same window, with the bare interpreter beside them, so
machine noise hits them all: as shipped (camera on, microphone pre-roll on), with the
microphone's pre-roll off (``pre_roll = 0``: the device stays closed until an alarm), and with
camera and microphone off. Each is pressed and resolved once first (the capture it starts is
waited out), so the peak RSS includes one alarm's evidence.

A wake-up is a context switch, voluntary or not, of any thread of the daemon process (summed
from /proc/PID/task/*/status over the window; threads that came and went inside the window
are not seen). Python 3.11 does not give its threads OS names, so the daemon is started
through a small wrapper that records each thread's native id and Python name in a folder;
the per-thread table in the note comes from there. The microphone's capture process (a child
running PortAudio) is a separate process: it is reported in its own rows and NOT counted in
the daemon's figures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")

# Runs the CLI with every thread's native id -> Python name written to argv[1] (bench only).
_NAMING = """
import runpy, sys, threading
from pathlib import Path
names = Path(sys.argv.pop(1))
names.joinpath(str(threading.get_native_id())).write_text("main")
boot = threading.Thread._bootstrap_inner
def named(self):
    names.joinpath(str(threading.get_native_id())).write_text(self.name)
    boot(self)
threading.Thread._bootstrap_inner = named
sys.argv[0] = "safehouse"
runpy.run_module("safehouse.device.cli.main", run_name="__main__", alter_sys=True)
"""

VARIANTS = {
    "shipped": "",
    "pre-roll off": "[microphone]\npre_roll = 0\n",
    "camera and microphone off": "[camera]\nenabled = false\n[microphone]\nenabled = false\n",
}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _status(path: Path, *keys: str) -> list[int]:
    values = dict.fromkeys(keys, 0)
    try:
        for line in path.read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0])
    except (OSError, ValueError):
        pass
    return [values[k] for k in keys]


def _peak_rss_mb(pid: int) -> float:
    (hwm,) = _status(Path(f"/proc/{pid}/status"), "VmHWM")
    return hwm / 1024 if hwm else float("nan")


def switches(pid: int) -> dict[int, int]:
    """Voluntary + involuntary context switches of every live thread of ``pid``, by thread id."""
    out: dict[int, int] = {}
    try:
        tids = [int(p.name) for p in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return out
    for tid in tids:
        v, n = _status(Path(f"/proc/{pid}/task/{tid}/status"), "voluntary_ctxt_switches",
                       "nonvoluntary_ctxt_switches")
        out[tid] = v + n
    return out


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in task.read_text().split()]
    return found


@dataclass
class Daemon:
    label: str
    folder: Path
    proc: subprocess.Popen[bytes]
    names: Path
    before: dict[int, int] = field(default_factory=dict)
    child_before: dict[int, dict[int, int]] = field(default_factory=dict)
    cpu0: float = 0.0

    @property
    def cli(self) -> list[str]:
        return [sys.executable, "-m", "safehouse.device.cli.main", "--config", str(self.folder / "c.toml")]

    def name(self, tid: int) -> str:
        try:
            return (self.names / str(tid)).read_text()
        except OSError:
            return "?"

    def busy(self) -> bool:
        """A capture worker is still alive (its post-roll is still being recorded)."""
        return any(self.name(t).startswith("capture-") for t in switches(self.proc.pid))

    def snapshot(self) -> None:
        self.before, self.cpu0 = switches(self.proc.pid), _cpu_seconds(self.proc.pid)
        self.child_before = {c: switches(c) for c in children(self.proc.pid)}


def start(label: str, extra: str, root: Path) -> Daemon:
    folder = root / label.replace(" ", "-")
    names = folder / "threads"
    names.mkdir(parents=True)
    (folder / "c.toml").write_text(f'[device]\nid = "IDLE"\nprecinct = "b"\nstate_dir = "{folder}/state"\n'
                                   f'[control]\nsocket = "{folder}/ctl.sock"\n{extra}')
    proc = subprocess.Popen([sys.executable, "-c", _NAMING, str(names), "--config", str(folder / "c.toml"),
                             "run", "--sim"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Daemon(label, folder, proc, names)


def _wait_ready(daemons: list[Daemon], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for d in daemons:
        while not (d.folder / "ctl.sock").exists():
            if time.monotonic() > deadline or d.proc.poll() is not None:
                raise RuntimeError(f"daemon ({d.label}) did not start")
            time.sleep(0.05)


def _exercise(daemons: list[Daemon], timeout: float = 60.0) -> None:
    for d in daemons:
        subprocess.run([*d.cli, "press"], check=True, capture_output=True)
        subprocess.run([*d.cli, "resolve", "false_alarm"], check=True, capture_output=True)
    time.sleep(1.0)
    deadline = time.monotonic() + timeout
    while any(d.busy() for d in daemons) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)


def _per_thread(d: Daemon, after: dict[int, int], span: float) -> str:
    rates: dict[str, float] = {}
    for tid, n in after.items():
        if tid in d.before:
            key = d.name(tid)
            rates[key] = rates.get(key, 0.0) + (n - d.before[tid]) / span
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(rates.items(), key=lambda kv: -kv[1]))


def run(window: float = 30.0) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="sh-idle-", dir="/tmp"))
    daemons = [start(label, extra, root) for label, extra in VARIANTS.items()]
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
    results: dict[str, dict[str, Any]] = {}
    try:
        _wait_ready(daemons)
        _exercise(daemons)
        for d in daemons:
            d.snapshot()
        b0, bs0, t0 = _cpu_seconds(bare.pid), switches(bare.pid), time.monotonic()
        time.sleep(window)
        span = time.monotonic() - t0
        b1, bs1 = _cpu_seconds(bare.pid), switches(bare.pid)
        bare_rss = _peak_rss_mb(bare.pid)
        bare_wakes = sum(n - bs0.get(t, n) for t, n in bs1.items()) / span
        for d in daemons:
            pid = d.proc.pid
            after = switches(pid)
            wakes = sum(n - d.before[t] for t, n in after.items() if t in d.before) / span
            kids = {c: switches(c) for c in children(pid)}
            kid_wakes = sum(n - d.child_before.get(c, {}).get(t, n)
                            for c, th in kids.items() for t, n in th.items()) / span
            results[d.label] = {
                "cpu": 100 * (_cpu_seconds(pid) - d.cpu0) / span, "rss": _peak_rss_mb(pid), "wakes": wakes,
                "threads": _per_thread(d, after, span), "kid_wakes": kid_wakes,
                "kid_rss": sum(_peak_rss_mb(c) for c in kids) if kids else 0.0, "kids": len(kids)}
    finally:
        for proc in [d.proc for d in daemons] + [bare]:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)
    return _rows(results, span, 100 * (b1 - b0) / span, bare_rss, bare_wakes)


def _rows(r: dict[str, dict[str, Any]], span: float, bare_cpu: float, bare_rss: float,
          bare_wakes: float) -> list[dict[str, Any]]:
    shipped, off, quiet = r["shipped"], r["pre-roll off"], r["camera and microphone off"]
    child = ("the microphone's capture process (a child, {k} running) is not counted here: "
             "{w:.2f} wake-ups/s and {m:.1f} MB peak RSS of its own")
    return [
        {"figure": f"idle CPU of `safehouse run --sim` over {span:.0f} s", "value": shipped["cpu"],
         "unit": "% of one core", "baseline": bare_cpu, "target": 1.0},
        {"figure": "peak RSS of `safehouse run --sim`", "value": shipped["rss"], "unit": "MB",
         "baseline": bare_rss, "target": 50.0,
         "note": child.format(k=shipped["kids"], w=shipped["kid_wakes"], m=shipped["kid_rss"])},
        {"figure": "peak RSS of `run --sim`, camera and microphone off", "value": quiet["rss"], "unit": "MB",
         "baseline": bare_rss, "target": 40.0},
        {"figure": f"idle wake-ups of `run --sim` (all threads, {span:.0f} s), pre-roll on",
         "value": shipped["wakes"], "unit": "/s", "baseline": bare_wakes, "target": 12.0,
         "note": "per thread, /s: " + shipped["threads"]},
        {"figure": "idle wake-ups of the microphone's capture process, pre-roll on",
         "value": shipped["kid_wakes"], "unit": "/s", "target": None,
         "note": "a separate process (PortAudio); not counted in the daemon's wake-ups"},
        {"figure": "idle wake-ups of `run --sim`, pre-roll off (pre_roll = 0)", "value": off["wakes"],
         "unit": "/s", "baseline": bare_wakes, "target": 2.0, "note": "per thread, /s: " + off["threads"]},
        {"figure": "idle wake-ups of `run --sim`, camera and microphone off", "value": quiet["wakes"],
         "unit": "/s", "baseline": bare_wakes, "target": 2.0, "note": "per thread, /s: " + quiet["threads"]},
    ]


if __name__ == "__main__":
    from bench import report

    print(report.text_table(run(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0)))
