"""The volunteer registry: real files, real scrypt, PINs kept secret (`safehouse volunteer` itself:
tests/cli/test_volunteer_cli.py).

Most tests hash with CHEAP parameters so the file runs in seconds; the defaults are exercised
by the timing test and by test_default_parameters_are_written_and_verify.
"""

from __future__ import annotations

import logging
import os
import re
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from safehouse.device.core.errors import ConfigError, SafehouseError
from safehouse.device.runtime import config as configuration
from safehouse.services.volunteers import (
    DEFAULT_PARAMS,
    DuplicateVolunteer,
    InvalidPin,
    InvalidVolunteer,
    Match,
    PinCollision,
    ScryptParams,
    UnknownVolunteer,
    VolunteerRegistry,
)
from safehouse.services.volunteers_edit import add, hash_pin, remove
from tests.rig.kiosk_config import write_config

CHEAP = ScryptParams(n=16, r=1, p=1)
PIN, DURESS, OTHER_PIN = "73914628", "51862093", "40027715"  # 8 digits: never in base64 by chance
HASHES = re.compile(r'"scrypt\$[^"]*"')


def enrol(path: Path, vid: str, pin: str, duress: str | None = None, name: str = "") -> None:
    add(path, vid, name or f"Volunteer {vid}", pin, duress, params=CHEAP)


def test_round_trip_add_list_verify_remove(tmp_path: Path) -> None:
    path = tmp_path / "volunteers.toml"
    enrol(path, "v042", PIN, DURESS, name="Chan Tai Man")
    enrol(path, "v043", OTHER_PIN, name="陳大文")
    registry = VolunteerRegistry.load(path)
    assert [(v.id, v.name, v.has_duress) for v in registry.volunteers] == [
        ("v042", "Chan Tai Man", True), ("v043", "陳大文", False)]
    v042 = registry.get("v042")
    assert v042 is not None and registry.get("v999") is None
    assert registry.verify(PIN) == Match(v042, duress=False)
    assert registry.verify(DURESS) == Match(v042, duress=True)
    assert registry.verify(OTHER_PIN) == Match(registry.volunteers[1], duress=False)
    for wrong in ("73914629", "7391", "", "73914628#", "abcd", "123456789"):
        assert registry.verify(wrong) is None, wrong

    removed = remove(path, "v042")
    assert removed.id == "v042"
    after = VolunteerRegistry.load(path)
    assert [v.id for v in after.volunteers] == ["v043"]
    assert after.verify(PIN) is None and after.verify(DURESS) is None
    assert after.verify(OTHER_PIN) is not None
    assert after.version != registry.version


def test_missing_file_is_an_empty_registry_that_recognises_nobody(tmp_path: Path) -> None:
    registry = VolunteerRegistry.load(tmp_path / "volunteers.toml")
    assert registry.volunteers == () and registry.version == "absent"
    assert registry.verify(PIN) is None


def test_default_parameters_are_written_and_verify(tmp_path: Path) -> None:
    path = tmp_path / "volunteers.toml"
    add(path, "v001", "Default Cost", PIN, DURESS)
    text = path.read_text()
    assert text.count(f'"scrypt$n={DEFAULT_PARAMS.n},r={DEFAULT_PARAMS.r},p={DEFAULT_PARAMS.p}$') == 2
    enrol(path, "v002", OTHER_PIN)  # other parameters in the same file keep working
    registry = VolunteerRegistry.load(path)
    assert registry.verify(DURESS) == Match(registry.volunteers[0], duress=True)
    assert registry.verify(OTHER_PIN) == Match(registry.volunteers[1], duress=False)
    assert hash_pin(PIN, CHEAP) != hash_pin(PIN, CHEAP)  # a fresh salt every time


def test_pins_never_appear_in_file_reprs_errors_or_logs(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    path = tmp_path / "volunteers.toml"
    enrol(path, "v042", PIN, DURESS)
    registry = VolunteerRegistry.load(path)
    match = registry.verify(DURESS)
    registry.verify("11112222")
    text = path.read_text()
    shown = [HASHES.sub('"<hash>"', text), repr(registry), repr(registry.volunteers), repr(match),
             str(registry.volunteers[0])]
    messages: list[str] = []
    attempts: list[Callable[[], None]] = [
        lambda: enrol(path, "v043", PIN),                     # PIN taken
        lambda: enrol(path, "v043", OTHER_PIN, DURESS),       # duress taken
        lambda: enrol(path, "v043", PIN[:7] + "x"),           # not digits
        lambda: enrol(path, "v043", PIN + "1"),               # too long
        lambda: enrol(path, "v043", OTHER_PIN, OTHER_PIN),    # duress = own PIN
    ]
    for attempt in attempts:
        with pytest.raises(SafehouseError) as info:
            attempt()
        messages += [str(info.value), repr(info.value)]
    path.write_text(text.replace(HASHES.findall(text)[0], f'"{PIN}"'))  # a plain PIN typed by hand
    with pytest.raises(ConfigError) as bad:
        VolunteerRegistry.load(path)
    messages.append(str(bad.value))
    for secret in (PIN, DURESS, OTHER_PIN, PIN[:7], PIN + "1"):
        for where, value in [("file", shown[0]), *(("repr", s) for s in shown[1:]),
                             *(("error", m) for m in messages), ("log", caplog.text)]:
            assert secret not in value, f"a PIN leaked into the {where}: {value}"
    assert "v042" in repr(registry.volunteers) and "pin_hash" not in repr(registry.volunteers)


def test_a_malformed_file_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "volunteers.toml"
    good = hash_pin(PIN, CHEAP)
    path.write_text(
        'colour = "red"\n'
        f'[[volunteer]]\nid = "v1"\nname = "Fine"\npin = "{good}"\n'
        '[[volunteer]]\nid = "v2"\nname = "Plain PIN"\npin = "1234"\nshoe = 42\n'
        f'[[volunteer]]\nid = "v1"\nname = ""\npin = "{hash_pin(OTHER_PIN, CHEAP)}"\n'
        f'[[volunteer]]\nid = "bad id"\nname = "X"\npin = "{good}"\n'
        '[[volunteer]]\nid = "v5"\nname = "Huge"\n'
        'pin = "scrypt$n=1048576,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$AA=="\n'
        'duress = "scrypt$n=1000,r=8,p=1$AAAA$AAAA"\n'
        '[[volunteer]]\nname = "No id"\n')
    with pytest.raises(ConfigError) as info:
        VolunteerRegistry.load(path)
    problems = info.value.problems
    for needle in ("colour: unknown key", "volunteer[1].pin: must be scrypt$",
                   "volunteer[1].shoe: unknown key",
                   "volunteer[2].id: 'v1' is already used by volunteer[0]", "volunteer[2].name: required",
                   "volunteer[3].id: required", "volunteer[3].pin: the same hash as volunteer[0].pin",
                   "volunteer[4].pin: scrypt n=1048576, r=8 needs 1024 MB",
                   "volunteer[4].duress: scrypt n=1000 must be a power of two",
                   "volunteer[5].id: required", "volunteer[5].pin: required"):
        assert any(p.startswith(needle) for p in problems), (needle, problems)
    assert len(problems) == 11, problems
    assert str(path) in str(info.value) and "1234" not in str(info.value)

    path.write_text("[[volunteer]\nid = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        VolunteerRegistry.load(path)


def test_refusals_name_the_problem_and_leave_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "volunteers.toml"
    enrol(path, "v042", PIN, DURESS)
    before = path.read_bytes()
    cases: list[tuple[type[SafehouseError], str, Callable[[], object]]] = [
        (DuplicateVolunteer, "already enrolled", lambda: enrol(path, "v042", OTHER_PIN)),
        (PinCollision, "PIN for v043 is already in use", lambda: enrol(path, "v043", PIN)),
        (PinCollision, "PIN for v043 is already in use", lambda: enrol(path, "v043", DURESS)),
        (PinCollision, "duress PIN for v043 is already in use", lambda: enrol(path, "v043", OTHER_PIN, PIN)),
        (PinCollision, "duress PIN for v043", lambda: enrol(path, "v043", OTHER_PIN, DURESS)),
        (InvalidPin, "must differ", lambda: enrol(path, "v043", OTHER_PIN, OTHER_PIN)),
        (InvalidPin, "4 to 8 digits", lambda: enrol(path, "v043", "123")),
        (InvalidPin, "4 to 8 digits", lambda: enrol(path, "v043", "123456789")),
        (InvalidPin, "4 to 8 digits", lambda: enrol(path, "v043", "12a4")),
        (InvalidPin, "4 to 8 digits", lambda: enrol(path, "v043", "١٢٣٤")),  # Arabic-Indic digits
        (InvalidPin, "duress PIN must be 4 to 8", lambda: enrol(path, "v043", OTHER_PIN, "12")),
        (InvalidVolunteer, "volunteer id", lambda: enrol(path, "v 43", OTHER_PIN)),
        (InvalidVolunteer, "name", lambda: enrol(path, "v043", OTHER_PIN, name="two\nlines")),
        (UnknownVolunteer, "no volunteer 'v999'", lambda: remove(path, "v999")),
    ]
    for kind, message, attempt in cases:
        with pytest.raises(kind, match=re.escape(message)):
            attempt()
        assert path.read_bytes() == before, message
    enrol(path, "v043", OTHER_PIN, "99887766")  # a free PIN still goes in
    assert [v.id for v in VolunteerRegistry.load(path).volunteers] == ["v042", "v043"]


def test_reloaded_if_changed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "volunteers.toml"
    registry = VolunteerRegistry.load(path)
    assert registry.reloaded_if_changed() is registry  # still absent
    enrol(path, "v042", PIN)
    first = registry.reloaded_if_changed()
    assert first is not registry and first.verify(PIN) is not None
    assert first.reloaded_if_changed() is first

    text = path.read_text()
    path.write_text(text.replace('id = "v042"', 'id = "v042"\nname = "again"'))  # a slip in a hand edit
    with caplog.at_level(logging.ERROR):
        kept = first.reloaded_if_changed()
        assert kept.reloaded_if_changed() is kept  # logged once, not every few seconds
    assert kept.volunteers == first.volunteers and kept.verify(PIN) is not None
    assert kept.problems and caplog.text.count("was not loaded") == 1

    path.write_text(text.replace("Volunteer v042", "Chan Tai Man"))  # fixed, same size or not
    fixed = kept.reloaded_if_changed()
    assert fixed.problems == () and fixed.volunteers[0].name == "Chan Tai Man"
    path.unlink()
    assert fixed.reloaded_if_changed().volunteers == ()


def test_file_mode_0640_and_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "volunteers.toml"
    old = os.umask(0o077)
    try:
        enrol(path, "v042", PIN)
        assert path.stat().st_mode & 0o777 == 0o640
        path.chmod(0o644)
        enrol(path, "v043", OTHER_PIN)
        assert path.stat().st_mode & 0o777 == 0o640
        remove(path, "v042")
        assert path.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volunteers.toml"]
    assert path.read_text().startswith("# Safe House volunteers")


def test_verify_takes_as_long_whoever_matches(tmp_path: Path) -> None:
    """Defaults, 6 volunteers with duress PINs: the first, the last and nobody cost the same."""
    path = tmp_path / "volunteers.toml"
    for i in range(6):
        add(path, f"v{i}", f"Volunteer {i}", f"{1000 + i}", f"{5000 + i}")
    registry = VolunteerRegistry.load(path)
    cases = {"first": "1000", "last duress": "5005", "nobody": "9999"}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(9):
        for name, pin in cases.items():  # interleaved: a load burst hits every case alike
            started = time.perf_counter()
            registry.verify(pin)
            samples[name].append(time.perf_counter() - started)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    assert max(medians.values()) <= 1.5 * min(medians.values()), medians


def test_volunteers_path_is_beside_the_config(tmp_path: Path) -> None:
    cfg = configuration.load(write_config(tmp_path))
    assert cfg.keypad.volunteers == tmp_path / "volunteers.toml"
