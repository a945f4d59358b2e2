"""What the power-cut loop does to the files between a kill -9 and the next start.

A garbled seq lease with its runtime copy gone (a cut clears ``/run``), and hostile files in
the runtime folder, where the daemon looks for the alarms a killed run left unsent
(``unsent-alarm-*.json``), its second lease copy and its spare command-id store. Each planted
spool file names a fresh ``planted-...`` event id, so a verdict can tell when one was trusted;
the links point at bait files in a folder of their own, outside every folder the kiosk uses,
which must never change. Every byte comes from the seeded ``rng``: a seed replays exactly.
"""

from __future__ import annotations

import json
import os
import random
import stat
from dataclasses import dataclass, field
from pathlib import Path

from safehouse.services.alarm_spool import PREFIX
from safehouse.services.seq_lease import NAME as LEASE

OTHER_DEVICE, OTHER_PRECINCT = "SH-OTHER-0001", "other"
NOT_JSON = "PANIC! \x00 {not json"  # a spool payload that is not an event at all
HOSTILE = ("foreign_topic", "foreign_device", "seq_taken", "seq_not_a_number", "not_json",
           "lone_surrogates", "not_utf8", "link_to_spool", "link_as_lease", "link_as_command_ids")


@dataclass
class Planted:
    """Everything planted so far: the planted event ids (-> what planted them) and the bait."""

    bait_dir: Path
    events: dict[str, str] = field(default_factory=dict)
    bait: dict[Path, tuple[bytes, int, str]] = field(default_factory=dict)  # -> content, mode, event id

    def touched(self) -> list[tuple[str, str]]:
        """(planted event id, what) of each bait file that changed (content, mode or existence):
        the link planted beside that event id was followed."""
        found = []
        for path, (content, mode, eid) in self.bait.items():
            try:
                now = (path.read_bytes(), stat.S_IMODE(path.lstat().st_mode))
            except OSError as exc:
                found.append((eid, f"{path.name}: {exc.strerror}"))
                continue
            if now != (content, mode):
                found.append((eid, f"{path.name}: {'content' if now[0] != content else 'mode'} changed"))
        return found


def garble_lease(state: Path, runtime: Path, rng: random.Random) -> None:
    """Both slots of ``state/seq.lease`` garbled, and the runtime copy gone."""
    (runtime / LEASE).unlink(missing_ok=True)
    path = state / LEASE
    if path.exists() and not path.is_symlink():
        with path.open("r+b") as f:
            f.write(rng.randbytes(64))


def plant(kinds: tuple[str, ...], runtime: Path, root: str, device: str, precinct: str, tag: str,
          planted: Planted, rng: random.Random) -> None:
    """Plant one hostile file of each kind in ``runtime``; ``tag`` says when (for the report)."""
    for kind in kinds:
        eid = f"planted-{rng.getrandbits(64):016x}"
        planted.events[eid] = f"{kind} ({tag})"
        mine = {"schema": "safehouse/v1/event", "event_id": eid, "seq": rng.randint(1, 5),
                "device_id": device, "precinct": precinct, "type": "panic", "code": 120,
                "ts": "2026-11-28T00:00:00.000Z", "clock_synced": False, "mono": 0.0,
                "boot_id": "planted", "test": False, "data": {}}
        spool = runtime / f"{PREFIX}{eid}.json"
        match kind:
            case "foreign_topic":
                other = {**mine, "device_id": OTHER_DEVICE, "precinct": OTHER_PRECINCT}
                _spool(spool, eid, f"safehouse/v1/{OTHER_PRECINCT}/{OTHER_DEVICE}/events", json.dumps(other))
            case "foreign_device":
                _spool(spool, eid, root + "events", json.dumps({**mine, "device_id": OTHER_DEVICE}))
            case "seq_taken":  # a seq the kiosk issued long ago, under a new event id
                _spool(spool, eid, root + "events", json.dumps(mine))
            case "seq_not_a_number":
                _spool(spool, eid, root + "events", json.dumps({**mine, "seq": "x"}))
            case "not_json":
                _spool(spool, eid, root + "events", NOT_JSON)
            case "lone_surrogates":  # valid JSON text naming code points no UTF-8 can hold
                text = json.dumps({**mine, "event_id": eid + "\ud800", "data": {"by": "\udc00x"}})
                _spool(spool, eid, root + "events", text)
            case "not_utf8":
                spool.write_bytes(b'{"event_id": "' + eid.encode() + b'\xff\xfe", "topic": "'
                                  + root.encode() + b'events", "payload": "\xc3("}')
            case "link_to_spool":  # the target is a well-formed spool file of this kiosk
                content = _spool_text(eid, root + "events", json.dumps(mine))
                spool.symlink_to(_bait(planted, eid, "spool-{}.json", content))
            case "link_as_lease":
                _replace_with_link(runtime / LEASE, _bait(planted, eid, "lease-{}", rng.randbytes(96)))
            case "link_as_command_ids":
                target = _bait(planted, eid, "ids-{}.db", rng.randbytes(4096))
                _replace_with_link(runtime / "command_ids.db", target)
            case _:
                raise ValueError(f"unknown hostile kind {kind!r}")


def _spool_text(eid: str, topic: str, payload: str) -> bytes:
    return json.dumps({"event_id": eid, "topic": topic, "payload": payload}).encode()


def _spool(path: Path, eid: str, topic: str, payload: str) -> None:
    path.write_bytes(_spool_text(eid, topic, payload))


def _bait(planted: Planted, eid: str, name: str, content: bytes) -> Path:
    path = planted.bait_dir / name.format(eid)
    path.write_bytes(content)
    os.chmod(path, 0o644)
    planted.bait[path] = (content, 0o644, eid)
    return path


def _replace_with_link(path: Path, target: Path) -> None:
    path.unlink(missing_ok=True)
    path.symlink_to(target)
