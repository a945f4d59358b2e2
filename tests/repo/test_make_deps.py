"""`make test` on a clean Debian gets every package the test-time builds read.

The Makefile installs APT_PACKAGES with ``--no-install-recommends``. gcc only *recommends*
libc6-dev, and libasound2-dev does not depend on it, so on a clean machine (a CI image) the
48 kHz-only test microphone (tests/rig/alsa_fixed_rate.c, built by tests/rig/audio.py) would fail
to compile for want of <stdio.h> and crti.o, while this machine, which has libc6-dev for other
reasons, builds it fine. This test builds the plugin, asks dpkg which package owns each
header and link input the compiler read, and checks each one is in APT_PACKAGES, in what they
pull in through Depends/Pre-Depends, or is part of every Debian install (Priority: required).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.rig.availability import require_tool

REPO = Path(__file__).resolve().parents[2]


def apt_packages() -> list[str]:
    text = (REPO / "Makefile").read_text()
    match = re.search(r"^APT_PACKAGES\s*:=\s*(.+)$", text, flags=re.M)
    assert match, "APT_PACKAGES not found in the Makefile"
    return match.group(1).split()


def closure(packages: list[str]) -> set[str]:
    """The packages apt installs for ``packages`` without recommends (names, no arch)."""
    res = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *packages],
                         capture_output=True, text=True, timeout=120, check=True)
    names = (line for line in res.stdout.splitlines() if line and not line[0].isspace())
    return {name.strip("<>").split(":")[0] for name in names}


def owners(paths: list[str]) -> dict[str, str]:
    """Path -> the package owning it, in one dpkg call. dpkg knows a file by the path its package
    ships (usrmerge: /bin/mount is /usr/bin/mount), so each is asked as given, resolved, and
    without its /usr prefix; unowned paths are left out."""
    asked: dict[str, str] = {}
    for path in paths:
        for real in (path, os.path.realpath(path)):
            for candidate in (real, real[4:] if real.startswith("/usr/") else real):
                asked.setdefault(candidate, path)
    res = subprocess.run(["dpkg-query", "-S", *asked], capture_output=True, text=True, check=False)
    found: dict[str, str] = {}
    for line in res.stdout.splitlines():
        packages, _, owned = line.partition(": ")
        if owned.strip() in asked:
            found.setdefault(asked[owned.strip()], packages.split(", ")[0].split(":")[0].strip())
    return found


def required(package: str) -> bool:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Priority}", package], capture_output=True, text=True,
                         check=False)
    return res.stdout.strip() == "required"


def test_the_fixed_rate_microphone_builds_from_apt_packages_alone(tmp_path: Path) -> None:
    cc = require_tool("cc")
    require_tool("apt-cache")
    # -H: every header read (stderr, dotted); -Wl,-t: every file the linker opened (stdout).
    res = subprocess.run([cc, "-H", "-shared", "-fPIC", "-DPIC", "-O2", "-o", str(tmp_path / "p.so"),
                          str(REPO / "tests/rig/alsa_fixed_rate.c"), "-lasound", "-Wl,-t"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    headers = [line.lstrip(". ").strip() for line in res.stderr.splitlines() if re.match(r"^\.+ /", line)]
    linked = [line.strip() for line in res.stdout.splitlines() if line.strip().startswith("/")]
    assert any(h.endswith("alsa/pcm_ioplug.h") for h in headers), res.stderr[-2000:]
    assert any(h.endswith("/stdio.h") for h in headers), res.stderr[-2000:]
    owned = {pkg: path for path, pkg in owners(headers + [p.strip("()") for p in linked]).items()}
    assert "libasound2-dev" in owned and "libc6-dev" in owned, owned
    have = closure(apt_packages())
    missing = {pkg: path for pkg, path in owned.items() if pkg not in have and not required(pkg)}
    assert not missing, (f"the Makefile's APT_PACKAGES (installed without recommends) do not bring "
                         f"these packages the test microphone's build reads: {missing}")


# Tools the tests ask for by name (require_tool fails in CI when one is missing). Not from apt:
# the venv's own scripts; make, which runs `make test` itself.
_NOT_APT = {"ansible-playbook", "ansible-inventory", "safehouse", "make"}


def test_every_tool_the_tests_require_comes_from_apt_packages() -> None:
    """A tool a test requires must come from APT_PACKAGES (or a package every Debian has):
    systemd-analyze and systemd-sysusers are in `systemd`, which a minimal image lacks."""
    names = {match for path in (REPO / "tests").rglob("*.py")
             for match in re.findall(r'require_tool\("([\w.+-]+)"\)', path.read_text())}
    names |= {"unshare", "setpriv", "mount"}  # tests/rig/sandbox.py require_sandbox()
    names -= _NOT_APT
    assert {"systemd-analyze", "cc", "socat", "mosquitto"} <= names, names
    paths = {}
    for name in sorted(names):
        path = shutil.which(name)
        if path is None:
            require_tool(name)  # fails in CI, skips elsewhere
        assert path is not None
        paths[name] = os.path.realpath(path)
    package = owners(list(paths.values()))
    have = closure(apt_packages())
    missing = {name: package.get(path, f"no package owns {path}") for name, path in paths.items()
               if package.get(path) not in have and not (path in package and required(package[path]))}
    assert not missing, f"tools the tests require that APT_PACKAGES does not bring: {missing}"
