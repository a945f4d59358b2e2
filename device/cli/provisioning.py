"""Provision a kiosk: identity, broker URL and TLS material into /etc/safehouse, checked first.

Everything is checked before anything is written: the certificate must match the key, be
signed by the CA and not be expired (a certificate expiring within 30 days only warns); the
identity and URL go through the config schema. Settings not named are kept: the existing
config tree is read and only the named keys are replaced. Files are written atomically
(temp + fsync + rename + fsync of the folder) and only when their bytes or mode differ, so
re-running with the same arguments changes nothing. ``--check`` (the broker round trip) is
``device/cli/provision_check.py``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safehouse.device.core.errors import ConfigError, SafehouseError
from safehouse.device.runtime import config as configuration
from safehouse.services.fsync import fsync_dir

CONFIG_REL = Path("etc/safehouse/config.toml")
TLS_REL = Path("etc/safehouse/tls")
TARGET_TLS = Path("/etc/safehouse/tls")
GROUP = "safehouse"
CONFIG_MODE = 0o640
CERT_MODE = 0o644
KEY_MODE = 0o600
DIR_MODE = 0o755
WARN_DAYS = 30


class ProvisionError(SafehouseError):
    """Provisioning was refused; ``problems`` names each file and what is wrong with it."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"provisioning refused, nothing written:\n{lines}")


@dataclass(frozen=True)
class Request:
    device_id: str
    precinct: str
    broker_url: str
    ca: Path
    cert: Path
    key: Path
    alliance: str | None = None
    hardware: str | None = None
    root: Path = Path("/")


@dataclass(frozen=True)
class FileWrite:
    path: Path  # on this machine (under root)
    data: bytes
    mode: int
    group: bool = False  # chgrp to GROUP when it exists
    owner: bool = False  # chown to the daemon's user when it exists (the 0600 key it must read)


@dataclass
class Result:
    changed: list[str] = field(default_factory=list)  # "device.precinct: 'p1' -> 'p2'", "wrote ..."
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> bool:
        return not self.changed


# --- certificate checks (openssl CLI) ------------------------------------------------------------

def _openssl(*args: str, openssl: str = "openssl") -> subprocess.CompletedProcess[str]:
    return subprocess.run([openssl, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False, timeout=30)


def _why(proc: subprocess.CompletedProcess[str]) -> str:
    text = (proc.stderr or proc.stdout).strip().splitlines()
    return text[0] if text else f"openssl exited with {proc.returncode}"


def _common_name(cert: Path, openssl: str) -> str | None:
    subject = _openssl("x509", "-noout", "-subject", "-nameopt", "multiline", "-in", str(cert),
                       openssl=openssl).stdout
    found = re.search(r"^\s*commonName\s*=\s*(.+?)\s*$", subject, re.M)
    return found.group(1) if found else None


def check_material(ca: Path, cert: Path, key: Path, *, openssl: str = "openssl",
                   warn_days: int = WARN_DAYS, device_id: str | None = None) -> list[str]:
    """Raise ProvisionError naming every bad file; return warnings (e.g. expiring soon).

    ``device_id``: the certificate's CN must be it. The precinct broker takes the CN as the
    kiosk's name (use_identity_as_username), so a kiosk holding another kiosk's certificate
    would connect as that kiosk and its own topics would be refused by the ACL.
    """
    problems: list[str] = []
    for label, path in (("CA certificate", ca), ("client certificate", cert), ("client key", key)):
        if not path.is_file():
            problems.append(f"{path}: {label} not found (or not a regular file)")
        elif not os.access(path, os.R_OK):
            problems.append(f"{path}: {label} is not readable")
    if problems:
        raise ProvisionError(problems)
    ca_proc = _openssl("x509", "-noout", "-subject", "-in", str(ca), openssl=openssl)
    if ca_proc.returncode != 0:
        problems.append(f"{ca}: not a PEM certificate ({_why(ca_proc)})")
    cert_pub = _openssl("x509", "-noout", "-pubkey", "-in", str(cert), openssl=openssl)
    if cert_pub.returncode != 0:
        problems.append(f"{cert}: not a PEM certificate ({_why(cert_pub)})")
    key_pub = _openssl("pkey", "-pubout", "-passin", "pass:", "-in", str(key), openssl=openssl)
    if key_pub.returncode != 0:
        problems.append(f"{key}: not a readable unencrypted PEM private key ({_why(key_pub)})")
    if problems:
        raise ProvisionError(problems)
    if cert_pub.stdout.strip() != key_pub.stdout.strip():
        problems.append(f"{cert}: certificate does not match the key {key} (different public keys)")
    verify = _openssl("verify", "-no_check_time", "-CAfile", str(ca), str(cert), openssl=openssl)
    if verify.returncode != 0:
        detail = " ".join(line.strip() for line in (verify.stdout + verify.stderr).splitlines()
                          if "error" in line.lower() and "verification failed" not in line)[:300]
        problems.append(f"{cert}: not signed by the CA {ca} ({detail or _why(verify)})")
    if device_id is not None:
        cn = _common_name(cert, openssl)
        if cn != device_id:
            problems.append(f"{cert}: certificate is for CN={cn or '(none)'}, not for this kiosk "
                            f"{device_id}: the broker takes the CN as the kiosk's name, so its ACL would "
                            f"refuse {device_id}'s topics; use the certificate issued for {device_id}")
    end = _openssl("x509", "-noout", "-enddate", "-in", str(cert), openssl=openssl).stdout.strip()
    not_after = end.partition("=")[2] or "unknown date"
    warnings: list[str] = []
    if _openssl("x509", "-noout", "-checkend", "0", "-in", str(cert), openssl=openssl).returncode != 0:
        problems.append(f"{cert}: certificate expired (notAfter {not_after})")
    elif _openssl("x509", "-noout", "-checkend", str(warn_days * 86400), "-in", str(cert),
                  openssl=openssl).returncode != 0:
        warnings.append(f"{cert}: certificate expires within {warn_days} days (notAfter {not_after}); "
                        "renew it soon")
    if problems:
        raise ProvisionError(problems)
    return warnings


# --- planning -----------------------------------------------------------------------------------

def _read_tree(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read the existing file: {exc.strerror or exc}"]) from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"existing file is not valid TOML (fix or remove it): {exc}"]) from exc


def updates(req: Request) -> dict[tuple[str, str], str]:
    """The keys this request names, with the values they get (paths as seen on the target)."""
    out = {("device", "id"): req.device_id, ("device", "precinct"): req.precinct,
           ("broker", "url"): req.broker_url, ("broker", "ca"): str(TARGET_TLS / "ca.pem"),
           ("broker", "cert"): str(TARGET_TLS / "client.pem"),
           ("broker", "key"): str(TARGET_TLS / "client.key")}
    if req.alliance is not None:
        out["device", "alliance"] = req.alliance
    if req.hardware is not None:
        out["device", "hardware"] = req.hardware
    return out


def plan_config(req: Request) -> tuple[FileWrite, list[str]]:
    """Validate the new config tree (ConfigError); return the config file to write and key changes."""
    config_path = req.root / CONFIG_REL
    tree = _read_tree(config_path)
    changes: list[str] = []
    for (section, name), value in updates(req).items():
        table = tree.setdefault(section, {})
        if not isinstance(table, dict):
            raise ConfigError(str(config_path), [f"[{section}] is not a table"])
        old = table.get(name)
        if old != value:
            changes.append(f"{section}.{name}: {old!r} -> {value!r}" if old is not None
                           else f"{section}.{name}: set to {value!r}")
        table[name] = value
    configuration.from_tree(tree, source=f"{config_path} (as provisioned)", base=config_path.parent)
    return FileWrite(config_path, configuration.to_toml(tree).encode(), CONFIG_MODE, group=True), changes


def plan_tls(req: Request) -> list[FileWrite]:
    ca, cert, key = installed_tls(req.root)
    return [FileWrite(ca, req.ca.read_bytes(), CERT_MODE), FileWrite(cert, req.cert.read_bytes(), CERT_MODE),
            FileWrite(key, req.key.read_bytes(), KEY_MODE, owner=True)]


# --- writing ------------------------------------------------------------------------------------

def _group_id() -> int | None:
    try:
        return grp.getgrnam(GROUP).gr_gid
    except KeyError:
        return None


def _user_id() -> int | None:
    try:
        return pwd.getpwnam(GROUP).pw_uid  # the daemon's user has the group's name (sysusers)
    except KeyError:
        return None


def atomic_write(path: Path, data: bytes, mode: int, gid: int | None = None,
                 uid: int | None = None) -> None:
    """Temp file in the same folder, mode and owner set before the data lands, fsync, rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        if gid is not None or uid is not None:
            os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def _make_dirs(folder: Path) -> None:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for d in reversed(missing):
        d.mkdir(mode=DIR_MODE)


def write_files(files: Sequence[FileWrite], result: Result) -> None:
    gid = _group_id()
    if gid is None:
        result.notes.append(f"group '{GROUP}' does not exist: config group left as is")
    uid = _user_id()
    for f in files:
        want_gid = gid if f.group else None
        want_uid = uid if f.owner else None
        try:
            st = f.path.stat()
            same = f.path.read_bytes() == f.data
        except FileNotFoundError:
            st, same = None, False
        if same and st is not None:
            fixes = []
            if st.st_mode & 0o7777 != f.mode:
                os.chmod(f.path, f.mode)
                fixes.append(f"mode {st.st_mode & 0o7777:o} -> {f.mode:o}")
            if want_gid is not None and st.st_gid != want_gid:
                os.chown(f.path, -1, want_gid)
                fixes.append(f"group -> {GROUP}")
            if want_uid is not None and st.st_uid != want_uid:
                os.chown(f.path, want_uid, -1)
                fixes.append(f"owner -> {GROUP}")
            if fixes:
                result.changed.append(f"{f.path}: {', '.join(fixes)}")
            continue
        _make_dirs(f.path.parent)
        atomic_write(f.path, f.data, f.mode, want_gid, want_uid)
        result.changed.append(f"{f.path}: {'written' if st is None else 'replaced'} (mode {f.mode:o})")


def provision(req: Request, *, openssl: str = "openssl") -> Result:
    """Check, then write what differs. Raises ProvisionError (refused) or ConfigError."""
    root_problems = [] if req.root.is_dir() else [f"{req.root}: --root is not a folder"]
    if root_problems:
        raise ProvisionError(root_problems)
    config_file, changes = plan_config(req)  # schema first: cheap, and lists every bad value
    result = Result(warnings=check_material(req.ca, req.cert, req.key, openssl=openssl,
                                            device_id=req.device_id))
    files = [*plan_tls(req), config_file]  # TLS before the config that points at it
    result.changed.extend(changes)
    write_files(files, result)
    return result


def installed_tls(root: Path) -> tuple[Path, Path, Path]:
    tls = root / TLS_REL
    return tls / "ca.pem", tls / "client.pem", tls / "client.key"


def openssl_path() -> str:
    return shutil.which("openssl") or "openssl"
