# Two commands on a fresh machine: `make run` (a kiosk on simulated hardware) and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CONFIG ?= config/sim.toml
# Debian packages the test suite talks to: broker, serial PTYs, audio (libasound2-dev + gcc build
# the 48 kHz-only test microphone, tests/rig/alsa_fixed_rate.c; gcc only recommends libc6-dev, and
# apt-get runs without recommends), PKI, systemd-analyze/systemd-sysusers (the unit tests; a
# minimal image has no systemd package).
APT_PACKAGES := mosquitto mosquitto-clients socat libportaudio2 alsa-utils libasound2-dev gcc libc6-dev openssl tzdata systemd

.PHONY: run test lint typecheck pytest pytest-tz bench chaos powercut fleet deps venv clean help

help:
	@echo "make run    start the kiosk daemon on simulated hardware ($(CONFIG))"
	@echo "make test   install what the tests need, then ruff, mypy --strict and pytest"
	@echo "make bench  run every benchmark; writes bench/report.md and bench/report.json"
	@echo "make chaos  the kiosk under seeded faults (SEED=1 DURATION=180); exit 1 if anything was lost"
	@echo "make powercut  kill -9 the kiosk trial after trial, its files damaged between (SEED=1 TRIALS=100)"
	@echo "make fleet  2,100 simulated kiosks against one local mosquitto"

$(VENV)/.stamp: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@mkdir -p $(VENV)/typing/safehouse
	@for d in device drivers services; do ln -sfn "$(CURDIR)/$$d" "$(VENV)/typing/safehouse/$$d"; done
	@touch $@

venv: $(VENV)/.stamp

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages: $$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null \
	    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null; } \
	    || { echo "apt-get install failed for: $$missing"; exit 1; }; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y $$missing"; exit 1; \
	  fi; \
	fi

# The simulated microphone needs PortAudio; without it the kiosk still runs (its evidence
# reports the microphone missing), so `make run` only warns when it cannot install it.
run: venv
	@dpkg-query -W -f='$${Status}\n' libportaudio2 2>/dev/null | grep -q '^install ok installed' \
	  || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libportaudio2 >/dev/null; } \
	  || echo "warning: libportaudio2 missing (sudo apt-get install -y libportaudio2): no simulated microphone"
	@mkdir -p .state
	$(VENV)/bin/safehouse --config $(CONFIG) run

lint: venv
	$(VENV)/bin/ruff check device drivers services tests bench

typecheck: venv
	MYPYPATH=$(VENV)/typing $(VENV)/bin/mypy --strict -p safehouse.device -p safehouse.drivers -p safehouse.services

# Two workers, one test file each at a time (--dist loadfile keeps a file's fixtures together):
# the suite mostly waits on real brokers, daemons and PTYs, so this halves it (~5.5 min, not ~10).
pytest: venv deps
	$(PY) -m pytest -q -n 2 --dist loadfile
	$(MAKE) --no-print-directory pytest-tz

# The time-of-day tests again, where it is night now (23:xx) and where it is day now (11:xx):
# one that secretly reads the local wall clock fails on every run, not only after 19:00.
pytest-tz: venv deps
	TZ=$$($(PY) -m tests.rig.tz_at 23) $(PY) -m pytest -q -p no:cacheprovider -m local_time
	TZ=$$($(PY) -m tests.rig.tz_at 11) $(PY) -m pytest -q -p no:cacheprovider -m local_time

test: deps venv lint typecheck pytest

bench: venv deps
	$(PY) -m bench

# The chaos run needs root (a size-limited tmpfs for state_dir), mosquitto and socat.
SEED ?= 1
DURATION ?= 180
chaos: venv deps
	$(PY) -m bench.chaos --seed $(SEED) --duration $(DURATION)

# The power-cut loop: the same needs as the chaos run.
TRIALS ?= 100
powercut: venv deps
	$(PY) -m bench.powercut --seed $(SEED) --trials $(TRIALS)

fleet: venv deps
	$(PY) -m bench.fleet

clean:
	rm -rf $(VENV) .state .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Raspberry Pi OS install (`systemd/install.sh --help`): `sudo make install`, `sudo make uninstall`.
# DESTDIR=/some/dir stages the files there instead (no apt, no systemctl); NO_APT=1 skips apt-get.
DESTDIR ?=
NO_APT ?= $(if $(DESTDIR),1,)

.PHONY: install uninstall

install:
	DESTDIR='$(DESTDIR)' systemd/install.sh $(if $(NO_APT),--no-apt)

uninstall:
	DESTDIR='$(DESTDIR)' systemd/uninstall.sh
