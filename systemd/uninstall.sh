#!/bin/bash
# Remove what systemd/install.sh installed. KEEPS /etc/safehouse (config, volunteers, keys) and
# /var/lib/safehouse (outbox, evidence, event log), and the safehouse user: delete them by hand.
set -eu

usage() {
    cat <<'EOF'
Usage: sudo systemd/uninstall.sh [options]

Stop, disable and remove the safehouse units, the venv /opt/safehouse and the sysusers.d /
tmpfiles.d files. Keeps /etc/safehouse and /var/lib/safehouse.

Options:
  --destdir DIR    uninstall from under DIR instead of / (also env DESTDIR); implies --no-systemctl
  --no-systemctl   do not run systemctl stop/disable/daemon-reload
  --no-apt         accepted for symmetry with install.sh (uninstall never runs apt)
  -h, --help       show this help
EOF
}

say() { printf 'safehouse uninstall: %s\n' "$*"; }
die() { printf 'safehouse uninstall: error: %s\n' "$*" >&2; exit 1; }

DESTDIR=${DESTDIR:-}
SYSTEMCTL=1
while [ $# -gt 0 ]; do
    case $1 in
        --destdir) [ $# -ge 2 ] || die "--destdir needs a directory"; DESTDIR=$2; shift ;;
        --destdir=*) DESTDIR=${1#*=} ;;
        --no-systemctl) SYSTEMCTL=0 ;;
        --no-apt) ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option: $1" ;;
    esac
    shift
done
DESTDIR=${DESTDIR%/}
[ -n "$DESTDIR" ] && SYSTEMCTL=0
if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    die "uninstalling from the system needs root: sudo $0 $*"
fi

UNITS="safehouse.service safehouse-selftest.service safehouse-selftest.timer"
if [ "$SYSTEMCTL" = 1 ]; then
    # shellcheck disable=SC2086
    if [ -d /run/systemd/system ]; then
        systemctl disable --now $UNITS || true
    else
        systemctl disable $UNITS || true
    fi
fi
for unit in $UNITS; do
    rm -f "$DESTDIR/etc/systemd/system/$unit"
done
rm -f "$DESTDIR/usr/lib/sysusers.d/safehouse.conf" "$DESTDIR/usr/lib/tmpfiles.d/safehouse.conf"
if [ -L "$DESTDIR/usr/local/bin/safehouse" ]; then
    rm -f "$DESTDIR/usr/local/bin/safehouse"
fi
rm -rf "$DESTDIR/opt/safehouse"
if [ "$SYSTEMCTL" = 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
fi
say "removed the units, /opt/safehouse and the sysusers.d/tmpfiles.d files."
say "kept /etc/safehouse (config, volunteers, keys), /var/lib/safehouse (outbox, evidence) and the"
say "safehouse user; remove them by hand if this kiosk is retired: sudo rm -rf /etc/safehouse /var/lib/safehouse"
