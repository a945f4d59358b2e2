"""`safehouse acl render`: the fleet inventory in, a least-privilege mosquitto ACL out.

What the rules do on a real broker is proved in tests/e2e/test_broker_permissions.py; here: the
inventory is read the way Ansible resolves it, every bad input is reported at once with where
it is, and the CLI writes the file a precinct installs.
"""

from __future__ import annotations

import json
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from safehouse.device.cli.main import main
from safehouse.device.core.errors import ConfigError
from safehouse.device.core.settings import IDENT
from safehouse.services.acl import fleet_of, render_acl
from safehouse.services.inventory import ID_PATTERN, Kiosk, read_fleet

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "deploy" / "ansible" / "inventory.example.yml"
N7 = "safehouse/v1/north-7"


def _rules(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_the_example_inventory_renders_one_block_per_kiosk_and_console_and_no_pattern() -> None:
    fleet = read_fleet(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), str(EXAMPLE))
    assert fleet.kiosks == (Kiosk("SH-0042", "north-7", "elm-street"), Kiosk("SH-0043", "north-7", "oak-row"))
    assert fleet.consoles == {"north-7": ("console-north-7",)}
    rules = _rules(render_acl(fleet))
    assert rules[:10] == [
        "user SH-0042",
        f"topic write {N7}/SH-0042/status",
        f"topic write {N7}/SH-0042/events",
        f"topic write {N7}/SH-0042/telemetry",
        f"topic write {N7}/SH-0042/evidence/#",
        f"topic write {N7}/SH-0042/cmd/+/result",
        f"topic readwrite {N7}/SH-0042/provision/check",
        f"topic read {N7}/SH-0042/cmd/#",
        f"topic write {N7}/SH-0042/alliance/elm-street/alert",
        f"topic read {N7}/+/alliance/elm-street/alert",
    ]
    assert rules[-3:] == ["user console-north-7", f"topic read {N7}/#", f"topic write {N7}/+/cmd/+"]
    assert not any(r.startswith("pattern") or "%u" in r or "%c" in r for r in rules)
    # no kiosk line grants a command topic: only the console writes cmd/{name}
    kiosk_writes = [r for r in rules[:20] if r.startswith("topic write") or r.startswith("topic readwrite")]
    assert all(not r.split()[-1].rstrip("#+").endswith("/cmd/") for r in kiosk_writes)


def test_variables_resolve_as_ansible_does_host_over_child_over_parent_over_all() -> None:
    tree = {"all": {"vars": {"precinct": "city", "alliance": "everyone"},
                    "hosts": {"h0": {"device_id": "K0"}},
                    "children": {"east": {"vars": {"precinct": "east", "consoles": ["con-east"]},
                                          "hosts": {"h1": {"device_id": "K1"},
                                                    "h2": {"device_id": "K2", "alliance": ""},
                                                    "h3": {"device_id": "K3", "precinct": "west"},
                                                    "infra": None}}}}}
    fleet = read_fleet(tree, "inv")
    assert fleet.kiosks == (Kiosk("K0", "city", "everyone"), Kiosk("K1", "east", "everyone"),
                            Kiosk("K2", "east", ""), Kiosk("K3", "west", "everyone"))
    assert fleet.consoles == {"east": ("con-east",), "west": ("con-east",)}
    text = render_acl(fleet)
    assert "alliance" not in "\n".join(line for line in _rules(text) if "/K2/" in line)


def test_a_host_listed_in_two_groups_must_be_the_same_kiosk_in_both() -> None:
    same = {"all": {"children": {"p1": {"vars": {"precinct": "p1"}, "hosts": {"h": {"device_id": "K"}}},
                                 "cams": {"hosts": {"h": None}}}}}
    assert read_fleet(same, "inv").kiosks == (Kiosk("K", "p1", ""),)
    split = {"all": {"children": {"p1": {"vars": {"precinct": "p1"}, "hosts": {"h": {"device_id": "K"}}},
                                  "p2": {"vars": {"precinct": "p2"}, "hosts": {"h": None}}}}}
    with pytest.raises(ConfigError, match=r"host h: precinct is 'p1' in all.children.p1.vars but 'p2'"):
        read_fleet(split, "inv")


BAD = """\
all:
  vars: {alliance: "{{ lookup('env', 'A') }}"}
  hosts:
    plus: {device_id: "SH+1", precinct: p1, alliance: a1}
    slash: {device_id: SH-2, precinct: "p/1", alliance: a1}
    hash: {device_id: SH-3, precinct: p1, alliance: "#"}
    twin: {device_id: SH-3, precinct: p1, alliance: a1}
    nameless: {precinct: p1, safehouse_cert: pki/x.pem}
    homeless: {device_id: SH-5}
    number: {device_id: 42, precinct: p1, alliance: a1}
    vaulted: {device_id: !vault "$ANSIBLE_VAULT;1.1;AES256 6162", precinct: p1, alliance: a1}
  children:
    p1:
      vars: {precinct: p1, consoles: console-p1}
      hosts:
        clash: {device_id: console-x, consoles: [console-x], alliance: a1}
    odd: [not, a, group]
"""
BAD_PROBLEMS = [
    "all.hosts.plus: device_id must be",
    "all.hosts.slash: precinct must be",
    "all.hosts.hash: alliance must be",
    "host twin: device_id 'SH-3' is also host hash's",
    "host nameless: has precinct, safehouse_cert but no device_id",
    "host homeless: device_id 'SH-5' has no precinct",
    "all.vars: alliance is a Jinja template",
    "all.hosts.number: device_id must be 1-64 characters of A-Z a-z 0-9 _ -, got 42",
    "all.hosts.vaulted: device_id must be 1-64 characters of A-Z a-z 0-9 _ -, got '<vault-encrypted value>'",
    "all.children.p1.vars: consoles must be a list of certificate names, got str",
    "console 'console-x' of precinct p1 is also the device_id of host clash",
    "all.children.odd: a group must be a mapping of hosts/vars/children, got list",
]


def test_a_bad_inventory_is_one_exit_78_listing_every_problem_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory, out = tmp_path / "inventory.yml", tmp_path / "safehouse.acl"
    inventory.write_text(BAD, encoding="utf-8")
    assert main(["acl", "render", "--inventory", str(inventory), "--out", str(out)]) == 78
    err = capsys.readouterr().err
    listed = [line.strip()[2:] for line in err.splitlines() if line.strip().startswith("- ")]
    assert len(listed) == len(BAD_PROBLEMS), err
    for expected in BAD_PROBLEMS:
        assert sum(line.startswith(expected) for line in listed) == 1, (expected, err)
    assert err.startswith(f"safehouse: {inventory}: {len(BAD_PROBLEMS)} problem(s)")
    assert not out.exists() and list(tmp_path.iterdir()) == [inventory]


@pytest.mark.parametrize(("text", "fault"), [
    ("all: [", "not valid YAML"),
    ("- just\n- a list\n", "must be a YAML mapping of groups"),
    ("", "must be a YAML mapping of groups"),
])
def test_an_unreadable_inventory_is_exit_78_too(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               text: str, fault: str) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(text, encoding="utf-8")
    assert main(["acl", "render", "--inventory", str(inventory)]) == 78
    assert fault in capsys.readouterr().err
    assert main(["acl", "render", "--inventory", str(tmp_path / "missing.yml")]) == 78
    assert "cannot read the inventory" in capsys.readouterr().err


def _alias_bomb(levels: int) -> str:
    """Each group lists the one before it twice: 2**levels group visits from a few lines."""
    lines = ["g0: &g0 {hosts: {h: {device_id: K1, precinct: p1}}}"]
    lines += [f"g{i}: &g{i} {{children: {{a: *g{i - 1}, b: *g{i - 1}}}}}" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(("text", "fault"), [
    ("all: &a\n  children:\n    x: *a\n", "line 1: *a refers to a value that contains it (a loop)"),
    ("all:\n  children:\n    g: " + "{children: {g: " * 3000 + "{}" + "}}" * 3000 + "\n",
     "nested too deeply to read"),
    ("{\"all\": " * 5000 + "{}" + "}" * 5000, "nested too deeply to read"),
    ("all: " + "{children: {g: " * 70 + "{hosts: {h: {device_id: K1, precinct: p1}}}" + "}}" * 70 + "\n",
     "groups nested more than 64 levels deep"),
    (_alias_bomb(40), "aliases expand to more than 1000000 values (a YAML alias bomb?)"),
])
def test_an_inventory_that_loops_nests_or_explodes_is_exit_78_not_a_traceback_or_a_hang(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fault: str) -> None:
    """Found by testing: an alias loop and deep nesting raised RecursionError (exit 1, a traceback);
    40 lines of aliases doubling each level walked 2**40 groups (never finished). Both are now
    refused while the YAML is read (device/cli/inventory_yaml.py), before anything walks it."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(text, encoding="utf-8")
    assert main(["acl", "render", "--inventory", str(inventory)]) == 78
    err = capsys.readouterr().err
    assert fault in err and "Traceback" not in err, err[:2000]


def test_render_writes_the_file_mosquitto_reads_and_says_what_it_granted(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "safehouse.acl"
    out.write_text("old rules\n", encoding="utf-8")
    assert main(["acl", "render", "--inventory", str(EXAMPLE), "--out", str(out)]) == 0
    assert capsys.readouterr().out == (f"wrote {out}: 2 kiosk(s), 1 console user(s), precinct(s) north-7\n")
    text = out.read_text(encoding="utf-8")
    assert "user SH-0042" in text and "old rules" not in text
    assert stat.S_IMODE(out.stat().st_mode) == 0o644 and list(tmp_path.iterdir()) == [out]
    assert main(["acl", "render", "--inventory", str(EXAMPLE)]) == 0  # no --out: standard output
    assert capsys.readouterr().out == text


def test_a_json_inventory_reads_the_same(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))), encoding="utf-8")
    assert main(["acl", "render", "--inventory", str(inventory)]) == 0
    assert _rules(capsys.readouterr().out) == _rules(render_acl(read_fleet(
        yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")), "x")))


def test_a_fleet_built_by_hand_is_checked_like_an_inventory() -> None:
    with pytest.raises(ConfigError) as err:
        render_acl(fleet_of([("SH+1", "p1", "a1"), ("SH-2", "p1", "#"), ("SH-2", "p1", "a1")],
                            {"p1": ["SH-2", "con sole"]}))
    assert len(err.value.problems) == 5, err.value.problems


def test_the_acl_id_rule_is_the_kiosk_configs() -> None:
    assert ID_PATTERN.pattern == IDENT.pattern


@pytest.mark.parametrize("bad", [{"device_id": "K1\n"}, {"precinct": "p1\n"}, {"alliance": "a1\n"}])
def test_an_id_with_a_trailing_newline_never_reaches_the_acl(bad: dict[str, str]) -> None:
    """Python's ``$`` matches before a final newline: 'K1\\n' passed and split every topic line
    of its block in two (mosquitto would read 'topic write safehouse/v1/p1/K1' and '/status')."""
    host = {"device_id": "K1", "precinct": "p1", "alliance": "a1", **bad}
    with pytest.raises(ConfigError) as err:
        read_fleet({"all": {"hosts": {"h1": host}}}, "inventory.yml")
    assert len(err.value.problems) == 1 and "\\n" in err.value.problems[0], err.value.problems
    kiosk = (host["device_id"], host["precinct"], host["alliance"])
    with pytest.raises(ConfigError):
        render_acl(fleet_of([kiosk], {}))


# --- issue 18: nothing silently dropped, nothing injected, nothing unbounded -----------------------

def _render(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str,
            name: str = "inventory.yml") -> tuple[int, str, str]:
    code = main(["acl", "render", "--inventory", str(tmp_path / name), *extra])
    out, err = capsys.readouterr()
    return code, out, err


INJECTED = "inv\nuser SH-0042\ntopic readwrite #\n.yml"


@pytest.mark.parametrize("name", [INJECTED, "inv\r\ntopic readwrite #.yml", "inv\udcff\u2028.yml"])
def test_no_name_from_outside_becomes_a_line_of_the_acl(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       name: str) -> None:
    """Issue 18 item 15: the inventory's file name went into the header comment as it was, so a
    name holding a newline added `topic readwrite #` to a kiosk's block. A byte that is not UTF-8
    in the name (PEP 383 turns it into a lone surrogate) crashed the write with a traceback. Such a
    name is now refused where it enters (argv, exit 2) and nothing is written; the header's own
    escaping, the guard behind that, is the next test."""
    shutil.copy(EXAMPLE, tmp_path / name)
    out_file = tmp_path / "safehouse.acl"
    with pytest.raises(SystemExit) as exited:
        _render(tmp_path, capsys, "--out", str(out_file), name=name)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and ("not_printable" in err or "not_unicode" in err), err
    assert "nothing was done" in err and not out_file.exists()


def test_a_header_source_that_is_not_one_printable_line_is_escaped() -> None:
    text = render_acl(fleet_of([("K1", "p1", "")], {}), source="a\nuser K1\ntopic readwrite #")
    assert "topic readwrite #" not in text.splitlines() and text.splitlines()[0].endswith(
        "from 'a\\nuser K1\\ntopic readwrite #'.")


def _laughs(levels: int, where: str = "device_id") -> str:
    """Nine aliases per level: 9**levels strings from a few hundred bytes ("billion laughs")."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nall:\n  hosts:\n    h: {{precinct: p1, {where}: *l{levels - 1}}}\n"


@pytest.mark.parametrize("where", ["device_id", "consoles"])
def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        where: str) -> None:
    """Issue 18 item 18: a value made of nested aliases was expanded by the first thing that printed
    it (its problem message): 7 levels made a 25 MB message, 9 levels 21 s of CPU and a
    MemoryError at 1.7 GB. The loader counts what aliases expand to and refuses past the cap."""
    (tmp_path / "inventory.yml").write_text(_laughs(7, where), encoding="utf-8")
    code, _out, err = _render(tmp_path, capsys)
    assert code == 78
    assert "aliases expand to more than 1000000 values" in err and len(err) < 1000, err[:2000]


def test_a_nine_level_alias_bomb_is_refused_within_a_small_cpu_and_memory_budget(tmp_path: Path) -> None:
    """The run in the issue, in a child held to 10 s of CPU and 1 GiB: before the cap it ran out
    of both (a 9**9 structure printed into a message)."""
    (tmp_path / "inventory.yml").write_text(_laughs(9), encoding="utf-8")

    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (10, 10))
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    done = subprocess.run([sys.executable, "-m", "safehouse.device.cli.main", "acl", "render", "--inventory",
                           str(tmp_path / "inventory.yml")], capture_output=True, text=True, timeout=60,
                          preexec_fn=limits, check=False)
    assert done.returncode == 78, done.stderr[-2000:]
    assert "aliases expand to more than" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("text", "problem"), [
    ("a: &a [1]\n" + "".join(f"b{i}: *a\n" for i in range(10_001)), "more than 10000 aliases"),
    ("all:\n  vars:\n    blob: '" + "x" * (4 << 20) + "'\n", "more than 4194304 bytes"),
    ("all: &a {children: {x: {hosts: {h: *a}}}}\n", "line 1: *a refers to a value that contains it"),
])
def test_an_inventory_past_a_cap_is_refused_with_the_cap_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str) -> None:
    (tmp_path / "inventory.yml").write_text(text, encoding="utf-8")
    code, _out, err = _render(tmp_path, capsys)
    assert code == 78 and problem in err and len(err) < 1000, err[:2000]


@pytest.mark.parametrize(("text", "problem"), [
    ('{"all": {"vars": {"precinct": "p1"}, "hosts": {"h1": {"device_id": "K1"}, "h1": {"device_id": "K2"}}}}',
     "duplicate key 'h1'"),
    ('{"all": {"vars": {"x": ' + "[" * 300 + "]" * 300 + "}}}", "nested too deeply to read"),
])
def test_a_json_inventory_without_pyyaml_is_held_to_the_same_rules(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        text: str, problem: str) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # the control machine has no PyYAML
    (tmp_path / "inventory.json").write_text(text, encoding="utf-8")
    code, _out, err = _render(tmp_path, capsys, name="inventory.json")
    assert code == 78 and problem in err, err
