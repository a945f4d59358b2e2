"""Rebuild a systemd unit's file-system view with ``unshare`` and run commands inside it.

systemd is not PID 1 on the test machines, so ``systemd-run -p ...`` cannot apply a sandbox;
this rig reads the unit file and reproduces, as root in new mount and PID namespaces:

- ``ProtectSystem=strict``: every mount read-only except /dev, /proc and /sys (the latter
  read-only too, as ProtectKernelTunables= makes it);
- ``StateDirectory=``/``RuntimeDirectory=``/``CacheDirectory=``/``LogsDirectory=``/
  ``ReadWritePaths=``: temp dirs bound read-write at those paths, owned by the unit's user;
- ``RuntimeDirectoryPreserve=``: a ``Between`` step among the commands is systemd's part
  between two runs of the service, a restart (``Restart=`` or ``systemctl restart``) or a stop
  and a later start; the runtime directories are emptied where systemd would remove them
  (``no``: always; ``restart``: on a stop only; ``yes``: never, until a reboot);
  ``ConfigurationDirectory=``: a temp dir (holding the test's config) bound read-only;
- ``PrivateTmp=``: fresh /tmp and /var/tmp; ``ProtectHome=yes``: /home and /run/user emptied
  (not /root: a test machine's interpreter may live there, as pyenv's does). The code under test
  stands in for /opt/safehouse, so a checkout (or interpreter) under a hidden path — a CI clone
  in /tmp — is bound back, read-only, at its own path;
- ``ProtectProc=``/``ProcSubset=``: a new /proc mounted with hidepid=/subset=;
- ``User=``/``Group=``/``SupplementaryGroups=``: the user is added to /etc/passwd and
  /etc/group *inside the view* (an overlay: the host's /etc is never written), and the
  commands run under it through setpriv with no capabilities and no_new_privs
  (``CapabilityBoundingSet=``, ``NoNewPrivileges=``), ``UMask=``, ``WorkingDirectory=``
  and ``Environment=``.

Missing mount points (/var/lib/safehouse on a machine where nothing was installed) are made in
an overlay over their parent, so the host file system is never changed. Not reproduced: the
device cgroup (DeviceAllow=), seccomp and the other kernel-side options; those are scored by
``systemd-analyze security`` instead.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.rig import REPO
from tests.rig.availability import unavailable

_KEEP = "/opt/.rehearsal-keep"  # where host code the view would hide is held while /tmp is replaced
_DIRECTORY_KEYS = {"StateDirectory": "/var/lib", "RuntimeDirectory": "/run",
                   "CacheDirectory": "/var/cache", "LogsDirectory": "/var/log"}


@dataclass(frozen=True)
class Between:
    """systemd's part between two commands of a rehearsal: ``restart`` (the service died and
    ``Restart=`` starts it again, or ``systemctl restart``) or ``stop`` (stopped, started later)."""

    kind: str

    def __post_init__(self) -> None:
        assert self.kind in ("restart", "stop"), self.kind


RESTART, STOP_THEN_START = Between("restart"), Between("stop")
Command = list[str] | Between


def parse_unit(text: str) -> dict[str, list[str]]:
    """The [Service] section as key -> values in order (comments and other sections left out)."""
    section = ""
    values: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]" and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


@dataclass
class UnitView:
    """What a unit's process sees, as far as the rig rebuilds it."""

    user: str
    group: str
    supplementary: list[str]
    writable: list[str]
    readonly_config: list[str]
    working_directory: str | None
    environment: dict[str, str]
    umask: int
    protect_system: str
    private_tmp: bool
    protect_home: bool = False
    proc_options: list[str] = field(default_factory=list)
    runtime: list[str] = field(default_factory=list)
    runtime_preserve: str = "no"

    def runtime_removed(self, between: Between) -> bool:
        """Whether systemd removes the runtime directories at ``between`` (src/core/unit.c,
        ``unit_destroy_runtime_data``: preserve ``no``, or ``restart`` when no restart follows)."""
        return self.runtime_preserve in ("no", "false", "0") or (
            self.runtime_preserve == "restart" and between.kind == "stop")

    @classmethod
    def of(cls, text: str) -> UnitView:
        unit = parse_unit(text)

        def last(key: str, default: str = "") -> str:
            return unit.get(key, [default])[-1]

        writable = [f"{base}/{name}" for key, base in _DIRECTORY_KEYS.items()
                    for value in unit.get(key, []) for name in value.split()]
        writable += [p.lstrip("-") for value in unit.get("ReadWritePaths", []) for p in value.split()]
        config = [f"/etc/{name}" for value in unit.get("ConfigurationDirectory", [])
                  for name in value.split()]
        env: dict[str, str] = {}
        for value in unit.get("Environment", []):
            for item in shlex.split(value):
                key, _, val = item.partition("=")
                env[key] = val
        proc = []
        if last("ProtectProc", "default") != "default":
            proc.append(f"hidepid={last('ProtectProc')}")
        if last("ProcSubset", "all") == "pid":
            proc.append("subset=pid")
        return cls(user=last("User", "root"), group=last("Group", last("User", "root")),
                   supplementary=[g for v in unit.get("SupplementaryGroups", []) for g in v.split()],
                   writable=writable, readonly_config=config,
                   working_directory=last("WorkingDirectory") or None, environment=env,
                   umask=int(last("UMask", "0022"), 8), protect_system=last("ProtectSystem", "no"),
                   private_tmp=last("PrivateTmp", "no") in ("yes", "true", "1"),
                   protect_home=last("ProtectHome", "no") in ("yes", "true", "1"), proc_options=proc,
                   runtime=[f"/run/{name}" for value in unit.get("RuntimeDirectory", [])
                            for name in value.split()],
                   runtime_preserve=last("RuntimeDirectoryPreserve", "no"))


def require_sandbox() -> None:
    """Root, unshare, setpriv and overlayfs, or skip (fail in CI)."""
    if os.geteuid() != 0:
        unavailable("the sandbox rehearsal needs root (mount namespaces)")
    for tool in ("unshare", "setpriv", "mount"):
        if shutil.which(tool) is None:
            unavailable(f"{tool} is not installed (util-linux)")
    if "overlay" not in Path("/proc/filesystems").read_text():
        unavailable("overlayfs is not available: the rig cannot add mount points without writing the host")


def _free_id(taken: set[int]) -> int:
    return next(i for i in range(61000, 65000) if i not in taken)


def _shell(view: UnitView, scratch: Path, commands: list[Command], config_files: dict[str, str],
           fake_gpio_label: str | None) -> str:
    """The root-side script that builds the view and then runs ``commands`` as the unit's user."""
    q = shlex.quote
    uid = _free_id({p.pw_uid for p in pwd.getpwall()} | {g.gr_gid for g in grp.getgrall()})
    lines = ["set -eu", "mount --make-rprivate /"]
    overlays: list[str] = []

    def overlay(parent: str) -> None:
        """Writes under ``parent`` go to a scratch dir, never to the host."""
        if parent in overlays:
            return
        n = len(overlays)
        overlays.append(parent)
        up, work = scratch / f"ovl{n}/up", scratch / f"ovl{n}/work"
        up.mkdir(parents=True)
        work.mkdir(parents=True)
        lines.append(f"mount -t overlay overlay -o lowerdir={q(parent)},upperdir={up},workdir={work} "
                     f"{q(parent)}")

    def ensure(path: str) -> None:
        """Make mount point ``path`` exist, via an overlay over its first existing ancestor."""
        if os.path.isdir(path):
            return
        parent = os.path.dirname(path)
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        overlay(parent)
        lines.append(f"mkdir -p {q(path)}")

    # The user and its groups, in an overlay over /etc.
    overlay("/etc")
    # A test machine's interpreter may live under a root-only directory (pyenv under /root);
    # a Pi's /usr/bin/python3 does not: let the user traverse it, in an overlay.
    runs = [c for c in commands if not isinstance(c, Between)]
    for command in runs:
        for parent in Path(os.path.realpath(command[0])).parents:
            if not parent.stat().st_mode & stat.S_IXOTH:
                overlay(str(parent))
                lines.append(f"chmod o+x {q(str(parent))}")
    gid = uid
    for name in [view.group, *view.supplementary]:
        lines.append(f"getent group {q(name)} >/dev/null || echo {q(f'{name}:x:{gid}:')} >> /etc/group")
        gid += 1
    groups = view.supplementary
    home = view.writable[0] if view.writable else "/"
    lines.append(f"getent passwd {q(view.user)} >/dev/null || echo "
                 f"{q(f'{view.user}:x:{uid}:{uid}::{home}:/usr/sbin/nologin')} >> /etc/passwd")
    lines.append(f"U=$(id -u {q(view.user)}); G=$(getent group {q(view.group)} | cut -d: -f3)")
    for n, path in enumerate(view.writable):
        src = scratch / f"rw{n}"
        src.mkdir()
        ensure(path)
        lines += [f"chown \"$U:$G\" {src}", f"chmod 0750 {src}", f"mount --bind {src} {q(path)}"]
    for n, path in enumerate(view.readonly_config):
        src = scratch / f"etc{n}"
        src.mkdir()
        for name, text in config_files.items():
            (src / name).write_text(text)
        lines += [f"chgrp -R \"$G\" {src}", f"chmod -R g+rX,o-rwx {src}"]
        ensure(path)
        lines.append(f"mount --bind {src} {q(path)}")
    if fake_gpio_label is not None:
        # A Pi's GPIO in sysfs (the kernel >= 6.17 layout), so the bring-up reaches the chip open.
        lines += ["mount -t tmpfs -o mode=0755 sysbus /sys/bus",
                  "mount -t tmpfs -o mode=0755 sysclass /sys/class",
                  "mkdir -p /sys/bus/gpio/devices/gpiochip0 /sys/class/gpio/chip0",
                  f"echo {q(fake_gpio_label)} > /sys/class/gpio/chip0/label",
                  "mount -o remount,ro /sys/bus", "mount -o remount,ro /sys/class"]
    hidden = ["/home", "/run/user"] if view.protect_home else []
    hidden += ["/tmp", "/var/tmp"] if view.private_tmp else []
    code = {str(REPO), *(str(Path(os.path.realpath(c[0])).parents[1]) for c in runs)}
    kept = sorted(p for p in code if any(p == h or p.startswith(h + "/") for h in hidden))
    for n, path in enumerate(kept):  # held outside what PrivateTmp/ProtectHome replace
        ensure(f"{_KEEP}{n}")
        lines.append(f"mount --bind {q(path)} {_KEEP}{n}")
    # ProtectSystem=strict: everything read-only but the API file systems and the writable paths.
    if view.protect_system == "strict":
        lines.append("mount -o remount,bind,ro /")
        lines += [f"mount -o remount,bind,ro {q(p)}" for p in overlays]
        lines += [f"mount -o remount,bind,ro {q(p)}" for p in view.readonly_config]
        lines.append("mount -o remount,bind,ro /sys")
    if view.protect_home:
        lines += [f"[ ! -d {d} ] || mount -t tmpfs -o mode=0755 home {d}" for d in ("/home", "/run/user")]
    if view.private_tmp:
        lines += ["mount -t tmpfs -o mode=1777 tmp /tmp", "mount -t tmpfs -o mode=1777 vartmp /var/tmp"]
    for n, path in enumerate(kept):
        lines += [f"mkdir -p {q(path)}", f"mount --bind {_KEEP}{n} {q(path)}",
                  f"mount -o remount,bind,ro {q(path)}"]
    lines += [f"[ ! -d {d} ] || mount -o remount,ro {d}" for d in ("/home", "/run/user") if view.protect_home]
    lines.append(f"mount -t proc -o {','.join(['nosuid', 'nodev', 'noexec', *view.proc_options])} proc /proc")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8",
           "USER": view.user, "LOGNAME": view.user, "HOME": home, **view.environment}
    setpriv = (f"setpriv --reuid=\"$U\" --regid=\"$G\" "
               f"{'--groups=' + ','.join(groups) if groups else '--clear-groups'} "
               "--inh-caps=-all --bounding-set=-all --no-new-privs")
    lines.append(f"umask {view.umask:04o}")
    workdir = view.working_directory or "/"
    lines.append(f"cd {q(workdir)} || {{ echo 'REHEARSAL: cannot enter the working directory "
                 f"{workdir}' >&2; exit 200; }}")
    env_args = " ".join(q(f"{k}={v}") for k, v in env.items())
    n = 0
    for command in commands:
        if isinstance(command, Between):
            # systemd removes the directory and makes it again at the next start: here it is a
            # mount point, so it is emptied (the same for the service, which sees it empty).
            lines += [f"find {q(path)} -mindepth 1 -delete" for path in view.runtime
                      if view.runtime_removed(command)]
            continue
        lines.append(f"echo '@@ command {n}' ; echo '@@ command {n}' >&2")
        n += 1
        lines.append(f"rc=0; {setpriv} env -i {env_args} {' '.join(q(c) for c in command)} || rc=$?")
        lines.append('echo "@@ rc $rc"')
    return "\n".join(lines) + "\n"


@dataclass
class Result:
    rc: int
    stdout: list[str]
    stderr: list[str]


def rehearse(unit_text: str, scratch: Path, commands: list[Command], *,
             config_files: dict[str, str] | None = None,
             fake_gpio_label: str | None = None, extra_env: dict[str, str] | None = None) -> list[Result]:
    """Run each command inside the unit's view; one Result per command (``Between`` steps,
    systemd's part between two runs, give none).

    ``extra_env`` adds variables to the unit's environment (e.g. PYTHONPATH for another checkout).
    """
    require_sandbox()
    view = UnitView.of(unit_text)
    view.environment.update(extra_env or {})
    script = _shell(view, scratch, commands, config_files or {}, fake_gpio_label)
    res = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "sh", "-c", script],
                         capture_output=True, text=True, timeout=120, check=False)
    if res.returncode != 0:
        raise AssertionError(f"the rig could not build the view (rc {res.returncode}):\n{res.stderr[-3000:]}")
    outs = res.stdout.split("@@ command ")[1:]
    errs = res.stderr.split("@@ command ")[1:]
    results = []
    for out, err in zip(outs, errs, strict=True):
        body, _, rc = out.partition("@@ rc ")
        results.append(Result(int(rc.split()[0]), body.splitlines()[1:], err.splitlines()[1:]))
    return results


def stages(result: Result) -> dict[str, str]:
    """The JSON object lines a payload printed, merged."""
    merged: dict[str, str] = {}
    for line in result.stdout:
        if line.startswith("{"):
            merged.update(json.loads(line))
    return merged
