"""The evidence store on real files: private modes, atomic and durable writes that survive a
kill -9, manifests, threads (eviction and purge: tests/services/test_evidence_eviction.py)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from safehouse.device.core.clock import iso_utc
from safehouse.services.evidence import (
    EvidenceStore,
    EvidenceSummary,
)
from tests.rig.clock import T0, FakeClock
from tests.rig.evidence import make_store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def hidden(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*"))


# -- put ---------------------------------------------------------------------------------


def test_put_stores_private_files_with_their_digest_even_under_a_lax_umask(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock())
    data = os.urandom(3000)
    old = os.umask(0)
    try:
        entry = store.put("EV-1", "snapshot.jpg", data, content_type="image/jpeg", width=640, height=480)
    finally:
        os.umask(old)
    assert entry.path == store.path_of("EV-1", "snapshot.jpg")
    assert entry.path == tmp_path / "evidence" / "EV-1" / "snapshot.jpg"
    assert entry.path.read_bytes() == data
    assert (entry.size, entry.sha256) == (3000, hashlib.sha256(data).hexdigest())
    assert entry.meta == {"content_type": "image/jpeg", "width": 640, "height": 480}
    assert mode(entry.path) == 0o600
    assert mode(entry.path.parent) == 0o700
    assert mode(store.root) == 0o700
    assert hidden(store.root) == []  # no temp file left behind
    assert store.total_bytes() == 3000


def test_put_fsyncs_the_file_its_folder_and_the_root_for_a_new_event(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(tmp_path, FakeClock())
    store.put("OTHER", "a.jpg", b"a")  # root exists already: only what the next put does counts
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    store.put("EV-1", "snap.jpg", b"x")
    root, folder = str(store.root), str(store.root / "EV-1")
    assert synced[0] == root  # the new folder's entry is durable before anything goes in it
    assert Path(synced[1]).parent == Path(folder) and Path(synced[1]).name.endswith(".tmp")
    assert synced[2:] == [folder]  # after the rename
    synced.clear()
    store.put("EV-1", "clip.wav", b"y")
    assert root not in synced and synced[-1] == folder


@pytest.mark.parametrize("event_id, name", [
    ("../outside", "a.jpg"), ("EV", "../../etc/passwd"), ("EV", "a/b"), ("a/b", "x"), ("..", "x"),
    ("EV", ".."), ("EV", "."), ("EV", ""), ("", "x"), ("EV", "x" * 65), ("EV", ".hidden"),
    ("EV", "sp ace"), ("EV", "a+b#"), ("EV", "manifest.json"), ("EV", "/abs"),
])
def test_names_that_could_leave_the_folder_are_refused(tmp_path: Path, event_id: str, name: str) -> None:
    store = make_store(tmp_path, FakeClock())
    with pytest.raises(ValueError, match="evidence"):
        store.put(event_id, name, b"data")
    assert list(tmp_path.rglob("*")) == []  # refused before anything was written


def test_meta_must_not_shadow_manifest_fields_and_must_be_json(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock())
    with pytest.raises(ValueError, match="sha256"):
        store.put("EV", "a.jpg", b"a", sha256="forged")
    with pytest.raises(ValueError, match="JSON"):
        store.put("EV", "a.jpg", b"a", when=object())
    assert list(tmp_path.rglob("*")) == []


def test_limits_are_validated_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"quota_bytes \(200\).*hard_limit_bytes \(100\)"):
        EvidenceStore(tmp_path, quota_bytes=200, hard_limit_bytes=100)


# -- crash safety ------------------------------------------------------------------------

CRASH = """
import os, signal, sys
from pathlib import Path
import safehouse.services.evidence_fs as fs
from safehouse.services.evidence import EvidenceStore

def power_cut(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

root = Path(sys.argv[1])
store = EvidenceStore(root, quota_bytes=10**9, hard_limit_bytes=10**9, clock=lambda: 1.8e9)
store.put("EV-1", "snap.jpg", b"complete")
if sys.argv[2] == "write":
    os.fsync = power_cut  # data written, not yet durable nor renamed into place
    store.put("EV-1", "clip.wav", b"x" * 5000)
else:
    fs.shutil.rmtree = power_cut  # folder renamed aside, deletion not done
    later = EvidenceStore(root, quota_bytes=10**9, hard_limit_bytes=10**9, clock=lambda: 1.9e9)
    later.purge(0, lambda _event: True)
"""


def crash(root: Path, during: str) -> None:
    proc = subprocess.run([sys.executable, "-c", CRASH, str(root), during], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == -9, proc.stderr


def test_a_write_killed_midway_leaves_no_visible_file_and_enforce_cleans_it(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock(1.8e9))
    crash(store.root, "write")
    assert [p.name.endswith(".tmp") for p in (store.root / "EV-1").iterdir()].count(True) == 1
    assert store.list() == [EvidenceSummary("EV-1", 1.8e9, len(b"complete"), 1, None, False)]
    assert not store.path_of("EV-1", "clip.wav").exists()
    assert store.manifest("EV-1") is None
    report = store.enforce(lambda _event: False)
    assert report.evicted == []
    assert hidden(store.root) == []
    assert store.path_of("EV-1", "snap.jpg").read_bytes() == b"complete"


def test_a_deletion_killed_midway_hides_the_event_and_enforce_finishes_it(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock(1.9e9))
    crash(store.root, "delete")
    assert [p.name.startswith(".del-") for p in store.root.iterdir()] == [True]
    assert store.list() == [] and store.total_bytes() == 0
    store.enforce(lambda _event: True)
    assert list(store.root.iterdir()) == []


# -- manifest ----------------------------------------------------------------------------


def test_manifest_round_trip_records_files_meta_and_failures(tmp_path: Path) -> None:
    clock = FakeClock()
    store = make_store(tmp_path, clock)
    jpeg, wav = b"\xff\xd8jpeg" * 50, b"RIFFwav" * 70
    snap = store.put("EV-7", "snapshot.jpg", jpeg, content_type="image/jpeg", width=640, height=480)
    clock.t += 12.5
    clip = store.put("EV-7", "clip.wav", wav, content_type="audio/wav", duration_s=10.0)
    doc = store.write_manifest("EV-7", [snap, clip], {"camera": "timeout after 5 s"}, trigger="panic",
                               test=False)
    assert store.manifest("EV-7") == doc
    assert doc == {
        "event_id": "EV-7",
        "created": iso_utc(T0),
        "files": [
            {"name": "snapshot.jpg", "size": len(jpeg), "sha256": hashlib.sha256(jpeg).hexdigest(),
             "content_type": "image/jpeg", "width": 640, "height": 480},
            {"name": "clip.wav", "size": len(wav), "sha256": hashlib.sha256(wav).hexdigest(),
             "content_type": "audio/wav", "duration_s": 10.0},
        ],
        "failures": {"camera": "timeout after 5 s"},
        "trigger": "panic",
        "test": False,
    }
    manifest_file = store.path_of("EV-7", "manifest.json")
    assert mode(manifest_file) == 0o600
    assert hidden(store.root) == []
    assert store.list() == [EvidenceSummary("EV-7", T0, len(jpeg) + len(wav) + manifest_file.stat().st_size,
                                            2, None, True)]


def test_a_manifest_of_failures_only_and_a_missing_manifest(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock())
    doc = store.write_manifest("EV-8", [], {"camera": "not detected", "microphone": "device busy"})
    assert store.manifest("EV-8") == doc and doc["files"] == []
    assert [(s.file_count, s.has_manifest) for s in store.list()] == [(0, True)]
    assert store.manifest("EV-404") is None
    with pytest.raises(ValueError, match="reserved"):
        store.write_manifest("EV-8", [], {}, files=[])


# -- threads -----------------------------------------------------------------------------


def test_puts_from_one_thread_survive_enforce_running_in_another(tmp_path: Path) -> None:
    store = make_store(tmp_path, FakeClock())
    stop = threading.Event()
    failures: list[BaseException] = []

    def enforcer() -> None:
        while not stop.is_set():
            try:
                store.enforce(lambda _event: False)
            except BaseException as exc:  # reported below, not lost in the thread
                failures.append(exc)
                return

    worker = threading.Thread(target=enforcer)
    worker.start()
    try:
        entries = [store.put(f"EV-{i}", "snap.jpg", b"x" * 1000) for i in range(60)]
    finally:
        stop.set()
        worker.join(10)
    assert failures == []
    assert all(e.path.read_bytes() == b"x" * 1000 for e in entries)
    assert store.total_bytes() == 60_000 and hidden(store.root) == []
