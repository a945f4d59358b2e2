"""The test rig, one module per part: real processes and devices on loopback, not mocks.

net (the loopback address, free ports), broker (a private mosquitto), subscriber and
mqtt_message (an independent MQTT client), blackhole (a port that accepts and says nothing),
precinct (mosquitto running the shipped precinct config), pki (a throwaway openssl PKI),
serial_pty (a socat PTY pair), audio (an ALSA file-plugin microphone), disk (a tmpfs that
fills), daemon (``safehouse run`` as a subprocess), sandbox (a systemd unit's view rebuilt
with unshare), picamera2_double, contract (the JSON Schemas), clock and wait (time helpers),
availability (skip here, fail in CI), kiosk_config. Fixtures live in ``tests/conftest.py``.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: shipped configs, units and schemas live here
