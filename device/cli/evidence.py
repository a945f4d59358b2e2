"""`safehouse evidence list|show ID|purge --older-than DAYS`: the technician's view of evidence.

Works with the daemon running or stopped: it reads the evidence folders and the outbox
(read-only) to tell what has reached the precinct. Purge never deletes undelivered evidence
unless asked to in so many words.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from safehouse.device.cli.exit_codes import EX_FAIL
from safehouse.device.runtime import config as configuration
from safehouse.services.evidence_fs import check_name
from safehouse.services.outbox_read import undelivered_prefixes

Handler = Callable[[argparse.Namespace], int]


def _event_id(text: str) -> str:
    """A usage error (2), not a traceback, for an ID that could leave the evidence folder."""
    try:
        return check_name("event id", text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _days(text: str) -> float:
    """Days >= 0; ``nan`` or a negative age is a usage error before the store is opened."""
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid float value: {text!r}") from None
    if not days >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of days >= 0, got {text!r}")
    return days


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    ev = sub.add_parser("evidence", help="snapshots and audio clips kept per alarm")
    actions = ev.add_subparsers(dest="evidence_command", metavar="ACTION", required=True)
    ls = actions.add_parser("list", parents=[common], help="evidence per alarm, oldest first")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)
    show = actions.add_parser("show", parents=[common], help="the manifest of one alarm's evidence")
    show.add_argument("event_id", metavar="ID", type=_event_id, help="the alarm's event_id")
    show.set_defaults(func=_show)
    purge = actions.add_parser("purge", parents=[common], help="delete delivered evidence older than N days")
    purge.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
    purge.add_argument("--include-undelivered", action="store_true",
                       help="also delete evidence the precinct has NOT received (irreversible)")
    purge.set_defaults(func=_purge)


def _store(args: argparse.Namespace) -> tuple[Any, Callable[[str], bool]]:
    from safehouse.device.runtime.evidence_parts import MB
    from safehouse.services.evidence import EvidenceStore

    cfg = configuration.load(args.config)
    ev = cfg.evidence
    store = EvidenceStore(cfg.device.state_dir / "evidence", quota_bytes=int(ev.quota_mb * MB),
                          hard_limit_bytes=int(ev.hard_limit_mb * MB), retention_days=ev.retention_days)
    waiting = undelivered_prefixes(cfg.device.state_dir)
    return store, lambda event_id: event_id not in waiting


def _list(args: argparse.Namespace) -> int:
    store, delivered = _store(args)
    rows = [{"event_id": s.event_id, "created": s.created, "bytes": s.total_bytes, "files": s.file_count,
             "delivered": delivered(s.event_id)} for s in store.list()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no evidence stored")
    for r in rows:
        when = datetime.fromtimestamp(r["created"], UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        state = "delivered" if r["delivered"] else "WAITING"
        print(f"{r['event_id']}  {when}  {r['files']} file(s)  {r['bytes']:>10} B  {state}")
    return 0


def _show(args: argparse.Namespace) -> int:
    store, _ = _store(args)
    manifest = store.manifest(args.event_id)
    if manifest is None:
        print(f"safehouse: no evidence manifest for {args.event_id}")
        return EX_FAIL
    print(json.dumps(manifest, indent=2, sort_keys=True))
    return 0


def _purge(args: argparse.Namespace) -> int:
    store, delivered = _store(args)
    report = store.purge(args.older_than, delivered, include_undelivered=args.include_undelivered)
    print(f"deleted {len(report.evicted) + len(report.evicted_undelivered)} alarm(s) of evidence "
          f"({report.bytes_before - report.bytes_after} bytes)")
    if report.evicted_undelivered:
        print(f"of which NOT delivered to the precinct: {', '.join(report.evicted_undelivered)}")
    return 0
