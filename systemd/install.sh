#!/bin/bash
# Install safehouse on Raspberry Pi OS Bookworm: the venv in /opt/safehouse, the systemd units,
# the system user (sysusers.d) and its directories (tmpfiles.d). Idempotent: run it again to
# upgrade. Never touches an existing /etc/safehouse/config.toml, volunteers.toml or tls/.
#
# Where things go (an admin-installed package, not a .deb, so units live in /etc):
#   /opt/safehouse/                    venv (--system-site-packages: picamera2, lgpio from apt)
#   /usr/local/bin/safehouse           symlink to /opt/safehouse/bin/safehouse
#   /etc/systemd/system/               safehouse.service, safehouse-selftest.{service,timer}
#   /usr/lib/sysusers.d/safehouse.conf user+group safehouse, member of gpio video audio dialout
#   /usr/lib/tmpfiles.d/safehouse.conf /etc/safehouse (0750 root:safehouse), /var/lib/safehouse
#   /etc/safehouse/config.toml.example the example config (config.toml itself is yours)
set -eu

usage() {
    cat <<'EOF'
Usage: sudo systemd/install.sh [options]

Install the safehouse kiosk firmware and its systemd units.

Options:
  --destdir DIR       install under DIR instead of / (also env DESTDIR); implies --no-systemctl
                      and skips systemd-sysusers/systemd-tmpfiles (for tests and image staging)
  --source DIR        the safehouse checkout to install (default: this script's repository)
  --no-apt            do not apt-get install the Debian packages
  --no-pip            do not pip install the package (the venv is still created)
  --no-systemctl      do not run systemctl daemon-reload / enable
  --venv-python PATH  interpreter that creates the venv (default: /usr/bin/python3)
  --import-check      prove the venv imports numpy, PIL, lgpio, picamera2 even with --no-pip
  --no-import-check   skip that proof (it runs by default after pip install)
  -h, --help          show this help

Debian packages installed: python3-venv python3-picamera2 python3-lgpio libportaudio2

After pip install, the installer proves that the venv imports picamera2 and lgpio with the
venv's own numpy and Pillow (a pip numpy 2 or Pillow shadowing apt's would break apt's
picamera2) and fails the install, naming the module, when one does not import.
EOF
}

say() { printf 'safehouse install: %s\n' "$*"; }
die() { printf 'safehouse install: error: %s\n' "$*" >&2; exit 1; }

SCRIPT_DIR=$(cd "$(dirname "$0")" && pwd)
SOURCE=$(cd "$SCRIPT_DIR/.." && pwd)
DESTDIR=${DESTDIR:-}
APT=1
PIP=1
SYSTEMCTL=1
VENV_PYTHON=/usr/bin/python3
IMPORT_CHECK=
# What the kiosk's real hardware imports, in this order (numpy and Pillow first: picamera2 must
# work with the ones the venv resolves). lgpio: apt's python3-lgpio is the one used.
IMPORT_MODULES=${SAFEHOUSE_IMPORT_CHECK:-numpy PIL lgpio picamera2}
APT_PACKAGES="python3-venv python3-picamera2 python3-lgpio libportaudio2"

while [ $# -gt 0 ]; do
    case $1 in
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; DESTDIR=$2; shift ;;
        --destdir=*) DESTDIR=${1#*=} ;;
        --source) [ $# -ge 2 ] || die "--source needs a directory"; SOURCE=$2; shift ;;
        --source=*) SOURCE=${1#*=} ;;
        --venv-python) [ $# -ge 2 ] || die "--venv-python needs a path"; VENV_PYTHON=$2; shift ;;
        --venv-python=*) VENV_PYTHON=${1#*=} ;;
        --no-apt) APT=0 ;;
        --no-pip) PIP=0 ;;
        --no-systemctl) SYSTEMCTL=0 ;;
        --import-check) IMPORT_CHECK=1 ;;
        --no-import-check) IMPORT_CHECK=0 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done

DESTDIR=${DESTDIR%/}
[ -n "$DESTDIR" ] && SYSTEMCTL=0
[ -f "$SOURCE/pyproject.toml" ] && [ -d "$SOURCE/systemd" ] \
    || die "$SOURCE is not a safehouse checkout (no pyproject.toml / systemd/)"
SOURCE=$(cd "$SOURCE" && pwd)
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    die "installing into the system needs root: sudo $0 $*"
fi

OPT=$DESTDIR/opt/safehouse
ETC=$DESTDIR/etc/safehouse
UNITS=$DESTDIR/etc/systemd/system

say "installing from $SOURCE into ${DESTDIR:-/}"

# 1. Debian packages (picamera2 and lgpio come from apt: the venv sees them).
if [ "$APT" = 1 ]; then
    say "apt-get install $APT_PACKAGES"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $APT_PACKAGES \
        || { apt-get update && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y --no-install-recommends $APT_PACKAGES; } \
        || die "apt-get install failed"
fi

# 2. The venv and the package.
[ -x "$VENV_PYTHON" ] || command -v "$VENV_PYTHON" >/dev/null 2>&1 \
    || die "no Python interpreter at $VENV_PYTHON"
if [ "$PIP" = 1 ]; then
    say "creating the venv $OPT (--system-site-packages)"
    "$VENV_PYTHON" -m venv --system-site-packages "$OPT" || die "python3 -m venv failed (apt-get install python3-venv?)"
    # Build from a clean copy: setuptools reuses the checkout's build/lib, which can hold modules
    # deleted since (they would be installed again), and writes build/ and *.egg-info into it.
    BUILD=$(mktemp -d "${TMPDIR:-/tmp}/safehouse-install.XXXXXX")
    trap 'rm -rf "$BUILD"' EXIT
    tar -C "$SOURCE" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
        --exclude=./.state --exclude='__pycache__' --exclude='.*_cache' -cf - . | tar -C "$BUILD" -xf -
    say "pip install $SOURCE[pi]"
    # --only-binary=lgpio: never build lgpio from source (it needs swig and liblgpio). apt's
    # python3-lgpio satisfies the requirement (PyPI's wheels: cp311 aarch64 and armv7l).
    "$OPT/bin/python" -m pip install --quiet --upgrade --only-binary=lgpio "$BUILD[pi]" \
        || die "pip install failed (lgpio must come from apt: apt-get install python3-lgpio; pip never builds it)"
    [ -x "$OPT/bin/safehouse" ] || die "pip installed no $OPT/bin/safehouse"
else
    say "creating the venv $OPT (--system-site-packages, without pip; --no-pip: package not installed)"
    "$VENV_PYTHON" -m venv --system-site-packages --without-pip "$OPT" || die "python3 -m venv failed"
fi

# 2b. Prove the venv can drive the camera and the GPIO before anything is enabled.
[ -n "$IMPORT_CHECK" ] || IMPORT_CHECK=$PIP
if [ "$IMPORT_CHECK" = 1 ]; then
    say "checking that the venv imports: $IMPORT_MODULES"
    # `import lgpio` makes a FIFO .lgd-nfyN in the working directory: use a throwaway one.
    CHECK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/safehouse-check.XXXXXX")
    # shellcheck disable=SC2086  # one argument per module name
    if ! REPORT=$(cd "$CHECK_DIR" && "$OPT/bin/python" - $IMPORT_MODULES 2>&1 <<'PYEOF'
import importlib
import sys

failed = []
for name in sys.argv[1:]:
    try:
        module = importlib.import_module(name)
    except Exception as exc:  # an ImportError, or numpy's ABI error raised from picamera2's deps
        failed.append(name)
        print(f"  cannot import {name}: {type(exc).__name__}: {exc}")
    else:
        version = getattr(module, "__version__", "")
        print(f"  {' '.join(filter(None, [name, version]))} from {getattr(module, '__file__', '?')}")
sys.exit(f"  not importable: {' '.join(failed)}" if failed else 0)
PYEOF
    ); then
        rm -rf "$CHECK_DIR"
        printf '%s\n' "$REPORT" >&2
        die "the venv $OPT cannot import what the kiosk's hardware needs (above). picamera2 and \
lgpio come from apt (python3-picamera2, python3-lgpio) and must import with the venv's numpy \
and Pillow: a pip-installed numpy >= 2 or Pillow in the venv shadows apt's (see $OPT/bin/pip \
list --local). lgpio missing: apt-get install python3-lgpio."
    fi
    rm -rf "$CHECK_DIR"
    printf '%s\n' "$REPORT"
fi
# 2c. A staged venv runs from /opt/safehouse on the target: its scripts' #! lines (the unit's
# ExecStart is bin/safehouse) and activate scripts must name that, not the staging directory.
if [ -n "$DESTDIR" ]; then
    STAGED=$(printf '%s' "$OPT" | sed 's/[][\\.*^$|]/\\&/g')
    grep -rlIF -- "$OPT" "$OPT/bin" | while IFS= read -r file; do
        sed -i "s|$STAGED|/opt/safehouse|g" "$file"
    done
fi
install -m 0644 "$SOURCE/README.md" "$OPT/README.md"
install -d -m 0755 "$DESTDIR/usr/local/bin"
ln -sfn /opt/safehouse/bin/safehouse "$DESTDIR/usr/local/bin/safehouse"

# 3. systemd units, sysusers.d, tmpfiles.d.
install -d -m 0755 "$UNITS" "$DESTDIR/usr/lib/sysusers.d" "$DESTDIR/usr/lib/tmpfiles.d"
for unit in safehouse.service safehouse-selftest.service safehouse-selftest.timer; do
    install -m 0644 "$SOURCE/systemd/$unit" "$UNITS/$unit"
done
install -m 0644 "$SOURCE/systemd/safehouse.sysusers" "$DESTDIR/usr/lib/sysusers.d/safehouse.conf"
install -m 0644 "$SOURCE/systemd/safehouse.tmpfiles" "$DESTDIR/usr/lib/tmpfiles.d/safehouse.conf"
say "units in $UNITS"

# 4. The user, its groups and directories (on the real system only).
if [ -z "$DESTDIR" ]; then
    systemd-sysusers /usr/lib/sysusers.d/safehouse.conf || die "systemd-sysusers failed"
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/safehouse.conf || die "systemd-tmpfiles failed"
fi

# 5. /etc/safehouse: the example only; config.toml, volunteers.toml and tls/ are never touched.
install -d -m 0750 "$ETC"
chmod 0750 "$ETC"
install -m 0640 "$SOURCE/config/config.example.toml" "$ETC/config.toml.example"
if [ -z "$DESTDIR" ]; then
    chgrp safehouse "$ETC" "$ETC/config.toml.example"
fi
for kept in config.toml volunteers.toml tls; do
    if [ -e "$ETC/$kept" ]; then say "kept the existing /etc/safehouse/$kept"; fi
done

# 6. Enable (not start: the kiosk needs provisioning first).
if [ "$SYSTEMCTL" = 1 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
    fi
    systemctl enable safehouse.service safehouse-selftest.timer
else
    say "skipped systemctl daemon-reload/enable"
fi

say "done."
if [ -e "$ETC/config.toml" ]; then
    say "next: sudo systemctl restart safehouse   (config.toml already present)"
else
    cat <<'EOF'
safehouse install: next steps:
  sudo safehouse provision ...      # writes /etc/safehouse/config.toml, keys and certificates
  sudo safehouse --config /etc/safehouse/config.toml config check
  sudo systemctl start safehouse safehouse-selftest.timer
EOF
fi
