"""READY=1 time and press → light p99 of the code before issue 13's refactor against today's, same run.

The old code (commit 1d4116e) is checked out into a git worktree under /tmp. The venv's editable
install maps ``safehouse.*`` to this checkout, so the old tree gets a PYTHONPATH folder of its
own, ``safehouse/{device,drivers,services}`` as symlinks into the worktree (a namespace package
found before the editable finder); every sample checks which files actually loaded. Each side
is measured by its own copy of bench/ready_time.py and bench/press_latency.py, in a fresh
interpreter, alternating old and new round by round so machine noise hits both alike. READY
is timed on restarts (a kiosk restarted by its watchdog): each round's first start, which also
creates the state directory's files (outbox, the simulator's 120 s signal file), is not counted.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.press_latency import percentile

BEFORE = "1d4116e"
HERE = Path(__file__).resolve().parent.parent

# Run in a tree's own folder: its bench package, and the safehouse the environment gives.
_SAMPLE = """
import json, shutil, sys, tempfile
from pathlib import Path
import safehouse.device, safehouse.drivers, safehouse.services
kind, n = sys.argv[1], int(sys.argv[2])
loaded = [list(m.__path__)[0] for m in (safehouse.device, safehouse.drivers, safehouse.services)]
if kind == "ready":
    from bench import ready_time
    folder = Path(tempfile.mkdtemp(prefix="sh-ba-", dir="/tmp"))
    try:
        ready_time.ready_once(folder)  # not counted: a first start also creates the state dir's files
        samples = [ready_time.ready_once(folder) for _ in range(n)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
else:
    from bench import press_latency
    samples = press_latency.measure(n, debounce_ms=0)
print(json.dumps({"loaded": loaded, "samples": samples}))
"""


class Tree:
    """One side: the folder to run in and the PYTHONPATH that makes its safehouse load."""

    def __init__(self, label: str, folder: Path, pythonpath: Path | None) -> None:
        self.label, self.folder, self.pythonpath = label, folder, pythonpath
        self.ready: list[float] = []
        self.press: list[float] = []

    def sample(self, kind: str, n: int) -> list[float]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if self.pythonpath:
            env["PYTHONPATH"] = str(self.pythonpath)
        out = subprocess.run([sys.executable, "-c", _SAMPLE, kind, str(n)], cwd=self.folder, env=env,
                             check=True, capture_output=True, text=True).stdout
        doc = json.loads(out.strip().splitlines()[-1])
        expected = (self.pythonpath / "safehouse") if self.pythonpath else self.folder
        for path in doc["loaded"]:  # the old tree's parts are symlinks: compare unresolved paths
            if not Path(path).is_relative_to(expected):
                raise RuntimeError(f"{self.label}: loaded {path}, not code under {expected}")
        return [float(x) for x in doc["samples"]]


def old_tree(root: Path) -> Tree:
    worktree = root / "tree"
    subprocess.run(["git", "-C", str(HERE), "worktree", "add", "--detach", str(worktree), BEFORE],
                   check=True, capture_output=True)
    package = root / "path" / "safehouse"
    package.mkdir(parents=True)
    for part in ("device", "drivers", "services"):
        (package / part).symlink_to(worktree / part)
    return Tree(f"before ({BEFORE})", worktree, root / "path")


def run(rounds: int = 12, ready_per_round: int = 2, presses_per_round: int = 200) -> list[dict[str, Any]]:
    root = Path(tempfile.mkdtemp(prefix="sh-before-after-", dir="/tmp"))
    try:
        old, new = old_tree(root), Tree("now", HERE, None)
        for i in range(rounds):
            for side in ((old, new) if i % 2 == 0 else (new, old)):
                side.ready += side.sample("ready", ready_per_round)
                side.press += side.sample("press", presses_per_round)
    finally:
        subprocess.run(["git", "-C", str(HERE), "worktree", "remove", "--force", str(root / "tree")],
                       check=False, capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
    note = f"before: commit {BEFORE} in a git worktree, alternating with today's code, {rounds} rounds"
    return [
        {"figure": "`run --sim` → READY=1 (median), now vs before the refactor", "unit": "s",
         "value": statistics.median(new.ready), "baseline": statistics.median(old.ready),
         "target_ratio": 1.05, "n": len(new.ready), "note": note},
        {"figure": "press→light p99 (debounce 0), now vs before the refactor", "unit": "ms",
         "value": percentile(new.press, 0.99) * 1000, "baseline": percentile(old.press, 0.99) * 1000,
         "target_ratio": 1.05, "n": len(new.press), "note": note},
    ]


if __name__ == "__main__":
    from bench import report

    print(report.text_table(run()))
