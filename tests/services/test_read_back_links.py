"""Every other file the daemon reopens in its state folder is never followed through a link.

A link planted in ``state_dir`` (by anyone who can write there, or left by a botched restore)
used to be followed: SQLite opened ``stats.db`` through it and wrote into its target, the alarm
reserve allocated its ballast into the target (growing it to the reserve's size), the outbox
sent an evidence row's target to the precinct, and the simulator read and rewrote through its
ALSA config. Each target here is a file the daemon must leave exactly as it was.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from safehouse.services.outbox import Outbox
from safehouse.services.reserve import NAME, SpaceReserve
from safehouse.services.stats_open import open_stats

SECRET = b"root:$6$not-for-the-precinct\n"


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_bytes(SECRET)
    path.chmod(0o644)
    return path


def untouched(path: Path) -> bool:
    return path.read_bytes() == SECRET and stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("member", ["stats.db", "stats.db-wal"])
def test_a_linked_stats_db_is_moved_aside_and_its_target_left_alone(tmp_path: Path, member: str) -> None:
    target = victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / member).symlink_to(target)
    stats, damage, fault = open_stats(state)
    with stats:
        stats.record("walk_in", {}, test=False)
    assert fault is None and damage is not None and damage.reason.startswith("link:")
    assert untouched(target) and not (state / "stats.db").is_symlink()
    assert damage.quarantined is not None and damage.quarantined.is_symlink()


def test_the_alarm_reserve_never_allocates_through_a_link(tmp_path: Path) -> None:
    target = victim(tmp_path)
    state = tmp_path / "state"
    state.mkdir()
    (state / NAME).symlink_to(target)
    reserve = SpaceReserve(state, 1 << 20)
    assert not reserve.armed  # a link is no ballast, whatever its target's size
    assert reserve.arm() and reserve.armed
    assert untouched(target) and stat.S_ISREG((state / NAME).lstat().st_mode)


def test_an_evidence_row_whose_file_became_a_link_is_given_up_not_sent(tmp_path: Path) -> None:
    target = victim(tmp_path)
    clip = tmp_path / "evidence" / "clip.wav"
    clip.parent.mkdir()
    clip.write_bytes(b"RIFF")
    box = Outbox(tmp_path / "state")
    try:
        box.append_file("t/evidence/e/clip.wav", clip, "e/clip.wav")
        clip.unlink()
        clip.symlink_to(target)  # swapped after it was queued
        assert box.pending(10) == []
        assert box.stats().depth["evidence"] == 0  # given up, with why, like a vanished file
    finally:
        box.close()
    assert untouched(target)


def test_the_simulated_microphone_replaces_a_linked_config_instead_of_writing_through_it(
        tmp_path: Path) -> None:
    """Run in a fresh interpreter: prepare_sim_audio() refuses to switch ALSA's config once
    sounddevice is loaded, and another test in this worker may have loaded it."""
    target = victim(tmp_path)
    folder = tmp_path / "sim-audio"
    folder.mkdir()
    (folder / "asound.conf").symlink_to(target)
    (folder / "mic.raw").symlink_to(target)
    env = {k: v for k, v in os.environ.items() if k != "ALSA_CONFIG_PATH"}
    script = ("import os, sys; from pathlib import Path; "
              "from safehouse.drivers.sim_audio import prepare_sim_audio; "
              "a = prepare_sim_audio(Path(sys.argv[1]), seconds=5.0); "
              "print(a.conf); print(a.raw); print(os.environ['ALSA_CONFIG_PATH'])")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    conf, raw, alsa_env = done.stdout.split()
    assert untouched(target)
    for path in (Path(conf), Path(raw)):
        assert stat.S_ISREG(path.lstat().st_mode) and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert alsa_env == conf
