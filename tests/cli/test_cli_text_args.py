"""Every string argument of every subcommand is checked where it enters (issue 18.1).

A byte that is not UTF-8, a control character or an over-long value is a usage error (exit 2)
naming the argument and the reason, before the config is read or the daemon is asked: the
config path here does not exist, so anything that got further would exit 78 or 1 instead.
"""

from __future__ import annotations

import os

import pytest

from safehouse.device.cli.main import main

STRAY = os.fsdecode(b"Jos\xe9")  # "José" typed on a Latin-1 terminal, as argv decodes it
NO_CONFIG = "/nonexistent/safehouse.toml"

# (argv with {} where the hostile text goes); every string argument the CLI takes
ARGVS = [
    "ack --by {}", "ack --by={}", "resolve cancelled --by {}", "keys {}", "evidence show {}",
    "volunteer add {} --name x --pin-stdin", "volunteer add v1 --name {} --pin-stdin",
    "volunteer remove {}", "stats --date {}", "config check {}", "outbox --salvage {}",
    "acl render --inventory {}", "accept --unit {}", "accept --report-dir {}",
    "provision --device-id {} --precinct p --broker mqtt://127.0.0.1 --ca a --cert b --key c",
    "provision --device-id d --precinct {} --broker mqtt://127.0.0.1 --ca a --cert b --key c",
    "provision --device-id d --precinct p --broker {} --ca a --cert b --key c",
    "provision --device-id d --precinct p --broker mqtt://127.0.0.1 --ca {} --cert b --key c",
    "status --config {}",
]
HOSTILE = [(STRAY, "not_unicode"), ("tech\udcff", "not_unicode"), ("a\x00b", "not_printable"),
           ("a\nb", "not_printable"), ("\x1b[2J", "not_printable"), ("x\u202eexe.txt", "not_printable"),
           ("\u2028", "not_printable")]


def split(template: str, value: str) -> list[str]:
    return [value if word == "{}" else word.replace("{}", value) for word in template.split()]


@pytest.mark.parametrize("template", ARGVS)
@pytest.mark.parametrize(("value", "reason"), HOSTILE)
def test_hostile_text_in_any_argument_is_a_usage_error_before_anything_is_read(
        capsys: pytest.CaptureFixture[str], template: str, value: str, reason: str) -> None:
    argv = ["--config", NO_CONFIG, *split(template, value)] if "--config" not in template \
        else split(template, value)
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"{reason}: position" in err and "nothing was done" in err, err
    assert err.isascii() or reason != "not_unicode"  # the refused byte is named, never echoed raw


def test_the_argument_is_named_and_the_byte_it_could_not_decode_is_shown(
        capsys: pytest.CaptureFixture[str]) -> None:
    for argv, named in ((["ack", "--by", STRAY], "argument 3 (after --by)"),
                        (["ack", "--by=" + STRAY], "argument --by"),
                        (["keys", STRAY], "argument 2")):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert f"{named}: not_unicode: position 3 holds U+DCE9, a lone surrogate standing for the " \
            "byte 0xe9 (not UTF-8)" in err, err


def test_a_free_text_option_over_its_limit_is_refused_at_the_cli_not_by_the_daemon(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--config", NO_CONFIG, "ack", "--by", "x" * 65])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "argument --by: too_long: 65 characters; at most 64" in err
    with pytest.raises(SystemExit):
        main(["--config", NO_CONFIG, "keys", "1" * 65])
    assert "too_long" in capsys.readouterr().err


def test_good_unicode_passes_the_boundary(capsys: pytest.CaptureFixture[str]) -> None:
    """Names in any script (and a full-width space) are text, not stray bytes: the command goes
    on to read its config (here missing: exit 78), it is not refused as usage."""
    for by in ("José", "陳大文", "陳　大文", "Ωmega 🙂", "x" * 64):
        assert main(["--config", NO_CONFIG, "ack", "--by", by]) == 78
    capsys.readouterr()
