"""`safehouse outbox --check` and `safehouse outbox --salvage [FILE]`: a technician's storage tools.

Both want the daemon stopped (`systemctl stop safehouse`): a check of a file being written
proves little, and a salvage moves the outbox aside. ``--check`` only reads (nothing is
created next to the files); ``--salvage`` does what the daemon does at start on a damaged
outbox — quarantine (kept 0600 in ``state_dir/quarantine``), a fresh outbox, every readable
row copied over with its seq and event_id — or copies an already quarantined FILE back in.
Run as root, it does its work as the daemon's user (device/cli/outbox_user.py), so every file it
leaves is the daemon's, and it never follows a link. Its reports stay recorded in the outbox:
the daemon sends them as ``storage_damaged`` at its next start.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import stat
from pathlib import Path
from typing import Any

from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.cli.outbox_user import become_daemon_user
from safehouse.device.core.errors import EventLogError
from safehouse.device.runtime.config import Config
from safehouse.services.outbox import Outbox
from safehouse.services.outbox_mark import MARK_AHEAD, read_mark
from safehouse.services.outbox_open import preflight
from safehouse.services.outbox_salvage import Damage, seq_of_damaged
from safehouse.services.quarantine import FOLDER, quarantined
from safehouse.services.seq_lease import SeqLease
from safehouse.services.stats_open import stats_problem

HELP_CHECK = ("integrity of outbox.db, its WAL, stats.db and the seq lease, read-only; "
              "exit 1 if anything is damaged (stop the daemon first)")
HELP_SALVAGE = ("quarantine a damaged outbox and copy every readable event (seq and event_id kept) into "
                "a fresh one; with FILE, copy a quarantined outbox back in (stop the daemon first; as root "
                "it works as the daemon's user)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--check", action="store_true", help=HELP_CHECK)
    parser.add_argument("--salvage", nargs="?", const="", metavar="FILE", help=HELP_SALVAGE)


def wanted(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "check", False)) or getattr(args, "salvage", None) is not None


def daemon_running(config: Config) -> bool:
    path = config.control.socket
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def run(args: argparse.Namespace, config: Config) -> int:
    if daemon_running(config):
        print(f"the daemon is running (it answers on {config.control.socket}): stop it first "
              "(systemctl stop safehouse); `safehouse status` shows its storage fault meanwhile")
        return EX_FAIL
    state_dir = config.device.state_dir
    if args.check:
        report = check(state_dir)
        print(json.dumps(report, indent=2, sort_keys=True) if args.json else render(report))
        return 0 if report["ok"] else EX_FAIL
    return salvage(state_dir, Path(args.salvage) if args.salvage else None, as_json=args.json)


def check(state_dir: Path) -> dict[str, Any]:
    outbox = state_dir / "outbox.db"
    lease = SeqLease([state_dir])
    mark = read_mark(outbox)
    unclean = lease.was_open or (mark is not None and mark.open)
    problem = preflight(outbox, unclean=unclean) if outbox.exists() or outbox.is_symlink() else None
    if problem is None and outbox.exists():
        problem = _quick_check(outbox)
    last = seq_of_damaged(outbox) if outbox.exists() else 0
    stats = state_dir / "stats.db"
    stats_bad = stats_problem(stats) if stats.exists() else None
    lease_note = None
    if lease.problems:  # not "not written yet": the mark that keeps seq from going back is not believed
        lease_note = (f"{'; '.join(lease.problems)}: the daemon continues seq above the outbox's own mark "
                      "and reports the range that may be missing")
    elif mark is not None and lease.found and lease.high < mark.mark - MARK_AHEAD:
        lease_note = (f"the seq lease ({lease.high}) is older than the outbox's own mark ({mark.mark}): "
                      "the daemon does not believe it and continues seq above the mark")
    elif not lease.found:
        lease_note = "no seq lease yet (written at the daemon's next start)"
    elif lease.high < last:
        lease_note = f"the seq lease ({lease.high}) is below the outbox's last seq ({last})"
    where = _state_dir_problem(state_dir)
    stale = mark is not None and lease.found and lease.high < mark.mark - MARK_AHEAD
    return {"ok": where is None and problem is None and stats_bad is None and not lease.unreadable
            and not (lease.found and lease.high < last) and not stale,
            "state_dir": {"path": str(state_dir), "problem": where},
            "outbox": {"path": str(outbox), "exists": outbox.exists(), "problem": problem, "last_seq": last},
            "stats": {"path": str(stats), "exists": stats.exists(), "problem": stats_bad},
            "seq_lease": {"high": lease.high, "found": lease.found, "unclean_stop": unclean,
                          "note": lease_note},
            "quarantined": [str(p) for p in quarantined(state_dir / FOLDER)]}


def _state_dir_problem(state_dir: Path) -> str | None:
    """What keeps the daemon off its disk whoever runs the check (not the caller's own rights)."""
    if state_dir.exists() and not state_dir.is_dir():
        return "not a directory: the daemon runs from memory"
    try:
        if state_dir.is_dir() and os.statvfs(state_dir).f_flag & os.ST_RDONLY:
            return "on a read-only file system: the daemon runs from memory"
    except OSError as exc:
        return f"cannot be examined: {exc}"
    return None


def _quick_check(path: Path) -> str | None:
    wal = path.with_name(path.name + "-wal").exists()
    uri = f"{path.absolute().as_uri()}?mode=ro" + ("" if wal else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            found = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(10)").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return f"{path.name}: {exc}"
    return None if found == ["ok"] else f"{path.name}: {'; '.join(found)[:400]}"


def render(report: dict[str, Any]) -> str:
    out, ok = report["outbox"], report["ok"]
    lines = [f"storage {'OK' if ok else 'DAMAGED'}"]
    if report["state_dir"]["problem"]:
        lines.append(f"state_dir {report['state_dir']['path']}: {report['state_dir']['problem']}")
    lines.append(f"outbox   {out['path']}: " + ("missing" if not out["exists"] else out["problem"] or
                                                 f"ok (last seq {out['last_seq']})"))
    st = report["stats"]
    lines.append(f"stats    {st['path']}: " + ("missing" if not st["exists"] else st["problem"] or "ok"))
    lease = report["seq_lease"]
    lines.append(f"seq lease high-water {lease['high']}" + (f" ({lease['note']})" if lease["note"] else "")
                 + ("; the daemon did not stop cleanly" if lease["unclean_stop"] else ""))
    for path in report["quarantined"]:
        lines.append(f"quarantined {path}")
    if report["state_dir"]["problem"]:
        lines.append("fix: device.state_dir must be a writable directory (`mount | grep safehouse`, `dmesg`; "
                     "README 'storage fault'); the daemon moves to disk by itself once it is")
    elif not ok:
        lines.append("fix: `safehouse outbox --salvage` (as the daemon's user), or just start the daemon: "
                     "it quarantines and salvages by itself")
    return "\n".join(lines)


def salvage(state_dir: Path, source: Path | None, *, as_json: bool) -> int:
    if os.geteuid() == 0:
        refused = become_daemon_user(state_dir)
        if refused is not None:
            print(f"refused: {refused}")
            return EX_FAIL
    if source is not None:
        problem = _source_problem(source, state_dir)
        if problem is not None:
            print(problem)
            return EX_FAIL
    try:
        box = Outbox(state_dir, recover=True)
    except EventLogError as exc:
        print(f"cannot open or create the outbox in {state_dir}: {exc}")
        return EX_FAIL
    try:
        if box.fault is not None:
            print(f"the outbox cannot be written: {box.fault}")
            return EX_FAIL
        if source is not None:
            box.damage.append(Damage(file="outbox.db", reason=f"salvage of {source} asked for",
                                     quarantined=source, high=seq_of_damaged(source)))
        todo = [d for d in box.damage if not d.salvaged_done]
        box.salvage()  # the reports stay recorded in the outbox: the daemon sends them (storage_damaged)
        reports = [d.as_data() for d in todo]
        owed = [d.as_data() for d in box.damage if d not in todo]
    finally:
        box.close()
    if as_json:
        print(json.dumps({"salvaged": reports, "reports_owed": owed}, indent=2, sort_keys=True))
        return 0
    if not reports:
        print("the outbox is healthy: nothing to salvage (`safehouse outbox --check` for details)")
    for r in reports:
        print(f"{r['file']}: {r['reason']}\n  quarantined {r['quarantined']}\n  salvaged "
              f"{r['salvaged']} row(s), {r['salvaged_events']} event(s); {r['unreadable_rows']} unreadable; "
              f"seq that may be missing: {r['missing_seq'] or 'none'}")
    for r in owed:
        print(f"{r['file']}: {r['reason']} (seq that may be missing: {r['missing_seq'] or 'none'}); "
              "the daemon reports it to the precinct at its next start")
    return 0


def _source_problem(source: Path, state_dir: Path) -> str | None:
    """Why ``FILE`` cannot be salvaged: absent, a link, or the live outbox itself."""
    try:
        mode = os.lstat(source).st_mode
    except OSError:
        return f"{source} does not exist"
    if stat.S_ISLNK(mode) or not stat.S_ISREG(mode):
        return f"{source} is a symbolic link or not a file: refused (no link is followed)"
    live = state_dir / "outbox.db"
    if live.exists() and os.path.samefile(source, live):
        return f"{source} is the live outbox: a salvage copies a quarantined file into it, never itself"
    return None
