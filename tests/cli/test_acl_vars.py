"""`safehouse acl render` reads an inventory's vars folders and precedence as Ansible does.

A kiosk whose ``device_id`` lived in ``host_vars/`` used to be dropped from the ACL with exit 0
(the broker then refused everything it sent), and a key written twice silently kept the last.
Each case is checked against the real ``ansible-inventory --list`` first, so the renderer agrees
with the tool that deploys the kiosks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_acl import N7, _render, _rules
from tests.rig.availability import require_tool


def _users(text: str) -> list[str]:
    return [line.split()[1] for line in _rules(text) if line.startswith("user ")]


def _ansible_hostvars(folder: Path, *extra: str) -> dict[str, dict[str, Any]]:
    """What Ansible itself resolves for each host of ``folder/inventory.yml`` (`ansible-inventory
    --list`, vars files included): the reference the renderer must agree with."""
    local = Path(sys.executable).parent / "ansible-inventory"
    exe = str(local) if local.is_file() else require_tool("ansible-inventory")
    (folder / ".ansible.cfg").write_text("[defaults]\n")  # not the machine's or the user's config
    env = {**os.environ, "ANSIBLE_CONFIG": str(folder / ".ansible.cfg"), "PYTHONWARNINGS": "ignore",
           "ANSIBLE_HOME": str(folder / ".ansible"), "ANSIBLE_LOCAL_TEMP": str(folder / ".ansible" / "tmp")}
    done = subprocess.run([exe, "-i", str(folder / "inventory.yml"), "--list", *extra], capture_output=True,
                          text=True, env=env, cwd=folder, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    hostvars: dict[str, dict[str, Any]] = json.loads(done.stdout)["_meta"]["hostvars"]
    return hostvars


@pytest.mark.parametrize(("text", "problem"), [
    ("all:\n  vars: {precinct: p1}\n  hosts:\n    kiosk-a: {device_id: SH-1}\n"
     "    kiosk-b: {device_id: SH-2}\n    kiosk-a: {device_id: SH-3}\n",
     "line 6: duplicate key 'kiosk-a' (first on line 4)"),
    ("all:\n  children:\n    p1:\n      vars: {precinct: p1}\n      hosts: {kiosk-a: {device_id: SH-1}}\n"
     "    p1:\n      vars: {precinct: p1}\n      hosts: {kiosk-b: {device_id: SH-2}}\n",
     "line 6: duplicate key 'p1' (first on line 3)"),
    ("all:\n  hosts:\n    kiosk-a:\n      device_id: SH-1\n      precinct: p1\n      device_id: SH-2\n",
     "line 6: duplicate key 'device_id' (first on line 4)"),
])
def test_a_key_written_twice_in_one_mapping_is_refused_naming_the_file_and_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str) -> None:
    """Issue 18 item 15: YAML keeps the last of two equal keys, so a host or group written twice
    dropped a kiosk from the ACL with exit 0, and the broker then refused all that kiosk sent."""
    (tmp_path / "inventory.yml").write_text(text, encoding="utf-8")
    code, out, err = _render(tmp_path, capsys)
    assert code == 78 and out == "", (code, out)
    assert f"{tmp_path / 'inventory.yml'}: 1 problem(s)" in err and problem in err, err


def _vars_folders(tmp_path: Path) -> None:
    """The inventory leaves ids to host_vars/ and group_vars/, in every form Ansible reads."""
    (tmp_path / "inventory.yml").write_text(
        "all:\n  children:\n    north_7:\n      hosts:\n        kiosk-a:\n        kiosk-b:\n"
        "        kiosk-c:\n        kiosk-d: {alliance: oak-row}\n        kiosk-e:\n", encoding="utf-8")
    host_vars, group_vars = tmp_path / "host_vars", tmp_path / "group_vars"
    (host_vars / "kiosk-b" / "more").mkdir(parents=True)
    group_vars.mkdir()
    (group_vars / "north_7.yml").write_text("precinct: north-7\nconsoles: [console-n7]\n")
    (group_vars / "all.yaml").write_text("alliance: everyone\n")
    (host_vars / "kiosk-a.yml").write_text("device_id: SH-0001\n")
    (host_vars / "kiosk-b" / "10-id.yml").write_text("device_id: SH-WRONG\n")
    (host_vars / "kiosk-b" / "20-id").write_text("device_id: SH-0002\n")  # later files win
    (host_vars / "kiosk-b" / "more" / "alliance.yaml").write_text("alliance: elm-street\n")
    (host_vars / "kiosk-b" / ".hidden.yml").write_text("device_id: SH-HIDDEN\n")
    (host_vars / "kiosk-b" / "30-id.yml~").write_text("device_id: SH-BACKUP\n")
    (host_vars / "kiosk-b" / "notes.txt").write_text("device_id: SH-NOTES\n")
    (host_vars / "kiosk-c").write_text("device_id: SH-0003\n")  # no extension
    (host_vars / "kiosk-d.json").write_text('{"device_id": "SH-0004"}')
    (host_vars / "kiosk-e.yaml").write_text("---\n# nothing here yet\n")  # empty: a host, no kiosk


def test_host_vars_and_group_vars_beside_the_inventory_are_read_as_ansible_reads_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 18 item 15: a device_id kept in host_vars/ (Ansible's usual place for per-host values)
    was never read: that kiosk was missing from the ACL, with exit 0."""
    _vars_folders(tmp_path)
    ansible = _ansible_hostvars(tmp_path)
    assert {h: v.get("device_id") for h, v in ansible.items()} == {  # what Ansible itself reads
        "kiosk-a": "SH-0001", "kiosk-b": "SH-0002", "kiosk-c": "SH-0003", "kiosk-d": "SH-0004",
        "kiosk-e": None}
    code, out, err = _render(tmp_path, capsys)
    assert code == 0, err
    assert _users(out) == ["SH-0001", "SH-0002", "SH-0003", "SH-0004", "console-n7"]
    fleet_rules = _rules(out)
    assert f"topic write {N7}/SH-0002/alliance/elm-street/alert" in fleet_rules
    assert f"topic write {N7}/SH-0001/alliance/everyone/alert" in fleet_rules
    assert f"topic write {N7}/SH-0004/alliance/oak-row/alert" in fleet_rules  # the host's own wins


HOST_K = "hosts: {h: {device_id: K}}"
IN_P = "all:\n  children:\n    p:\n      "  # then group p's keys, at this indent
# The files (inventory.yml and the vars files beside it) -> the precinct Ansible resolves for K
PRECEDENCE = [
    ({"inventory.yml": IN_P + "vars: {precinct: inline}\n      " + HOST_K,
      "group_vars/p.yml": "precinct: file"}, "file"),
    ({"inventory.yml": IN_P + "vars: {precinct: child-inline}\n      " + HOST_K,
      "group_vars/all.yml": "precinct: all-file"}, "all-file"),
    ({"inventory.yml": IN_P + "children:\n        c:\n          " + HOST_K,
      "group_vars/p.yml": "precinct: parent", "group_vars/c.yml": "precinct: child"}, "child"),
    ({"inventory.yml": IN_P + "hosts: {h: {device_id: K, precinct: host-inline}}",
      "group_vars/p.yml": "precinct: group-file"}, "host-inline"),
    ({"inventory.yml": "all:\n  hosts: {h: {device_id: K, precinct: host-inline}}",
      "host_vars/h.yml": "precinct: host-file"}, "host-file"),
    ({"inventory.yml": "all:\n  vars: {precinct: all-inline}\nkiosks:\n  " + HOST_K}, "all-inline"),
    ({"inventory.yml": "all:\n  " + HOST_K, "host_vars/h.yml": "precinct: inventory-side",
      "playbook/host_vars/h.yml": "precinct: playbook-side"}, "playbook-side"),
    ({"inventory.yml": IN_P + HOST_K, "group_vars/p.yml": "precinct: inventory-side",
      "playbook/group_vars/all.yml": "precinct: pb-all"}, "inventory-side"),
    # A group is one group however many places name it: its vars, hosts and parents add up.
    ({"inventory.yml": "all:\n  vars: {precinct: city}\n  children:\n    p:\n      " + HOST_K +
      "\n    region:\n      vars: {precinct: region}\n      children:\n        p:\n"}, "region"),
    ({"inventory.yml": "all:\n  vars: {precinct: city}\n  children:\n    p:\n      " + HOST_K +
      "\n    q:\n      children:\n        p:\n          vars: {precinct: named-again}\n"}, "named-again"),
    ({"inventory.yml": "p:\n  " + HOST_K + "\nregion:\n  vars: {precinct: region}\n  children:\n    p:\n",
      "group_vars/all.yml": "alliance: a1"}, "region"),
]


@pytest.mark.parametrize(("files", "precinct"), PRECEDENCE)
def test_variables_take_ansibles_precedence_across_the_inventory_and_the_vars_folders(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], precinct: str) -> None:
    """Ansible's order, lowest first: the inventory's group vars (all < parent < child), then
    group_vars/all, then group_vars/GROUP (parent < child; the playbook's folder after the
    inventory's each time), the inventory's host vars, host_vars/HOST. Each case is checked
    against ansible-inventory itself first."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    playbook = ("--playbook-dir", str(tmp_path / "playbook"))
    assert _ansible_hostvars(tmp_path, *playbook)["h"]["precinct"] == precinct  # Ansible's own answer
    code, out, err = _render(tmp_path, capsys, *playbook)
    assert code == 0, err
    assert re.search(rf"^# kiosk K: precinct {precinct}, ", out, re.MULTILINE), out


@pytest.mark.parametrize(("text", "problem"), [
    (IN_P + "vars: {precinct: a}\n      " + HOST_K + "\n    q:\n      children:\n        p:\n"
     "          vars: {precinct: b}\n",
     "host h: precinct is 'a' in all.children.p.vars but 'b' in all.children.q.children.p.vars"),
    ("all:\n  vars: {precinct: p1}\n  children:\n    a:\n      children: {b: {" + HOST_K + "}}\n"
     "    b:\n      children: {a: }\n", "groups a -> b -> a: a loop of groups"),
])
def test_a_group_named_in_two_places_is_one_group_and_may_not_disagree_with_itself(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, problem: str) -> None:
    """Ansible would take the later of two precincts for one group; a kiosk's identity is never
    left to which place in the file comes last. A loop of groups by name is refused too."""
    (tmp_path / "inventory.yml").write_text(text, encoding="utf-8")
    code, out, err = _render(tmp_path, capsys)
    assert code == 78 and out == "" and problem in err, err


@pytest.mark.parametrize(("files", "problem"), [
    ({"host_vars/h.yml": "device_id: K1\n", "host_vars/h.yaml": "alliance: a1\n"},
     "host_vars/h.yaml: Ansible reads only host_vars/h.yml"),
    ({"host_vars/h.yml": "$ANSIBLE_VAULT;1.1;AES256\n6162636465\n"}, "host_vars/h.yml: vault-encrypted"),
    ({"host_vars/h.yml": "- a\n- list\n"}, "host_vars/h.yml: must be a mapping of variables, got list"),
    ({"host_vars/h.yml": "device_id: K1\ndevice_id: K2\n"},
     "host_vars/h.yml: line 2: duplicate key 'device_id' (first on line 1)"),
    ({"group_vars/all.yml": "precinct: p/1\n"}, "group_vars/all.yml: precinct must be"),
])
def test_a_vars_file_that_cannot_be_read_as_ansible_reads_it_is_exit_78(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], files: dict[str, str], problem: str) -> None:
    (tmp_path / "inventory.yml").write_text("all:\n  vars: {precinct: p1}\n  hosts: {h: {device_id: K1}}\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    code, out, err = _render(tmp_path, capsys)
    assert code == 78 and out == "", err
    assert problem in err, err


def test_a_link_loop_in_host_vars_is_reported_once_not_walked(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Ansible would follow it until Python's recursion limit; two links doubled the walk at each level."""
    (tmp_path / "inventory.yml").write_text("all:\n  vars: {precinct: p1}\n  hosts: {h: {device_id: K1}}\n")
    (tmp_path / "host_vars" / "h").mkdir(parents=True)
    (tmp_path / "host_vars" / "h" / "ids.yml").write_text("alliance: a1\n")
    (tmp_path / "host_vars" / "h" / "again").symlink_to("..")
    (tmp_path / "host_vars" / "h" / "self").symlink_to(".")
    code, _out, err = _render(tmp_path, capsys)
    assert code == 78 and err.count("a link back to a folder above it") == 2, err[:2000]
    assert "host_vars/h/self: a link back" in err and "host_vars/h/again/h: a link back" in err, err
