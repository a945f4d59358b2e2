"""deploy/ansible/site.yml against two kiosks on this machine (``ansible_connection=local``).

Every host gets its own DESTDIR-like root under tmp (install.sh ``--destdir``, provision ``--root``)
and a client certificate from the throwaway PKI named after its device id. The first run must
change things and fail nothing; the second must report ``changed=0`` for every host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.rig.availability import require_tool
from tests.rig.pki import make_pki

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "deploy" / "ansible" / "site.yml"
HOSTS = {"kiosk1": "SH-T001", "kiosk2": "SH-T002"}
# What install.sh needs from a checkout; a snapshot keeps the run stable while the repo is edited.
SNAPSHOT = ("pyproject.toml", "README.md", "systemd", "config", "device", "drivers", "services")
RECAP_RE = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def ansible_playbook() -> str:
    """The venv's ansible-playbook first (its bin may not be on PATH), else PATH; CI fails if absent."""
    local = Path(sys.executable).parent / "ansible-playbook"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return require_tool("ansible-playbook")


def safehouse_cli() -> str:
    local = Path(sys.executable).parent / "safehouse"
    if local.is_file():
        return str(local)
    return require_tool("safehouse")  # fails in CI, skips elsewhere


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host."""
    tail = output[output.rfind("PLAY RECAP"):]
    return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
            for m in RECAP_RE.finditer(tail)}


def run_playbook(exe: str, inventory: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([exe, "-i", str(inventory), str(PLAYBOOK)], capture_output=True, text=True,
                          env=env, timeout=180, cwd=inventory.parent)
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
    return proc


def test_site_yml_installs_provisions_and_is_idempotent(tmp_path: Path) -> None:
    exe = ansible_playbook()
    cli = safehouse_cli()
    for tool in ("openssl", "tar", "gzip"):
        require_tool(tool)

    source = tmp_path / "repo"
    source.mkdir()
    for name in SNAPSHOT:
        item = REPO / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(item, source / name)

    pki = make_pki(tmp_path / "pki", clients=tuple(HOSTS.values()))
    hosts = {}
    for host, device_id in HOSTS.items():
        root = tmp_path / host
        root.mkdir()
        client = pki.client(device_id)
        hosts[host] = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                       "device_id": device_id, "alliance": f"alliance-{host}",
                       "broker_url": "mqtts://127.0.0.1:8883", "safehouse_root": str(root),
                       "safehouse_cert": str(client.cert), "safehouse_key": str(client.key)}
    control = tmp_path / "control"
    control.mkdir()
    inventory = tmp_path / "inventory.yml"  # JSON is YAML
    inventory.write_text(json.dumps({"all": {"hosts": hosts, "vars": {
        "precinct": "test-precinct", "safehouse_ca": str(pki.ca.cert), "safehouse_hardware": "sim",
        "safehouse_become": False, "safehouse_repo": str(source), "safehouse_control_tmp": str(control),
        "safehouse_cli": cli, "safehouse_selftest": False, "selftest_required": False,
        "safehouse_install_args": f"--no-apt --no-pip --no-systemctl --venv-python {sys.executable}",
    }}}, indent=2))

    (tmp_path / "ansible-tmp").mkdir()
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\nhost_key_checking = False\nretry_files_enabled = False\nnocows = True\n"
                   f"local_tmp = {tmp_path / 'ansible-tmp' / 'local'}\n"
                   f"remote_tmp = {tmp_path / 'ansible-tmp' / 'remote'}\n")
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg), "ANSIBLE_HOST_KEY_CHECKING": "False",
           "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_NOCOWS": "1", "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp" / "local"),
           "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-tmp" / "remote"),
           "ANSIBLE_HOME": str(tmp_path / "ansible-home"), "ANSIBLE_STDOUT_CALLBACK": "default",
           "ANSIBLE_DEPRECATION_WARNINGS": "False", "TMPDIR": str(control)}
    env.pop("SAFEHOUSE_CONFIG", None)

    first = run_playbook(exe, inventory, env)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    counts = recap(first.stdout)
    assert set(counts) == set(HOSTS), counts
    for host, c in counts.items():
        assert c["failed"] == 0 and c["unreachable"] == 0, (host, c)
        assert c["changed"] > 0, (host, c)

    for host, device_id in HOSTS.items():
        etc = tmp_path / host / "etc" / "safehouse"
        config = (etc / "config.toml").read_text()
        assert f'"{device_id}"' in config, config
        assert (etc / "tls" / "client.key").is_file()
        assert (etc / "tls" / "client.pem").read_bytes() == pki.client(device_id).cert.read_bytes()
        assert (etc / "config.toml.example").is_file()
        assert (tmp_path / host / "etc" / "systemd" / "system" / "safehouse.service").is_file()
        other = next(d for d in HOSTS.values() if d != device_id)
        assert other not in config

    second = run_playbook(exe, inventory, env)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    counts = recap(second.stdout)
    assert set(counts) == set(HOSTS), counts
    for host, c in counts.items():
        assert c == {**c, "changed": 0, "failed": 0, "unreachable": 0}, (host, c)


def test_site_yml_starts_the_unit_before_its_selftest_which_runs_only_inside_the_unit() -> None:
    """The selftest must test the unit (its sandbox, user and devices): `--daemon-only`, never the
    unsandboxed fallback, so the unit is (re)started first; a restart only when something changed."""
    [play] = yaml.safe_load(PLAYBOOK.read_text(encoding="utf-8"))
    tasks: list[dict[str, Any]] = play["tasks"]

    def argv(task: dict[str, Any]) -> list[str]:
        command = task.get("ansible.builtin.command")
        return [str(a) for a in command["argv"]] if isinstance(command, dict) and "argv" in command else []

    def index(what: str, match: Any) -> int:
        found = [i for i, task in enumerate(tasks) if match(task)]
        assert len(found) == 1, (what, [tasks[i]["name"] for i in found])
        return found[0]

    def unit(task: dict[str, Any], state: str) -> bool:
        service = task.get("ansible.builtin.systemd_service") or {}
        return service.get("state") == state and "safehouse.service" in (
            [service.get("name"), *(task.get("loop") or [])])

    provision = index("provision", lambda t: "provision" in (t.get("vars") or {}).get("provision_argv", []))
    restart = index("restart", lambda t: unit(t, "restarted"))
    start = index("start", lambda t: unit(t, "started"))
    selftest = index("selftest", lambda t: "selftest" in argv(t))
    report = index("report", lambda t: "selftest.rc" in str(t.get("ansible.builtin.debug")))
    assert provision < restart < start < selftest < report, [t["name"] for t in tasks]
    assert argv(tasks[selftest])[-3:] == ["selftest", "--daemon-only", "--json"]
    assert tasks[start]["ansible.builtin.systemd_service"]["enabled"] is True
    assert set(tasks[start]["loop"]) == {"safehouse.service", "safehouse-selftest.timer"}
    # a restart only when the install or the provisioning changed something: a second run stays changed=0
    assert tasks[restart]["when"] == "enable_units and (install_out is changed or provisioned is changed)"
