"""The test rig, one module per part: real processes and devices on loopback, not mocks.

- net: the one loopback address, free ports, children that die with the test run;
- broker: a private mosquitto per test (plain, mutual TLS, ACL); precinct: one running the
  shipped ``config/mosquitto-precinct.conf``; blackhole: a port that accepts and says nothing;
- subscriber and mqtt_message: an independent MQTT client, the precinct's side; console: its
  commands and their results; contract: the published JSON Schemas; pki: a throwaway openssl PKI;
- serial_pty: a socat PTY pair (the keypad's cable); audio: an ALSA file-plugin microphone;
  picamera2_double: the camera library's double; pins: mock GPIO pins read as timelines;
- disk: a tmpfs that really fills; daemon: ``safehouse run`` and the CLI as subprocesses;
  sandbox: a systemd unit's file-system view rebuilt with unshare;
- clock (FakeClock), wait (wait_for), evidence (a store on a fake clock), kiosk_config
  (write_config), availability (skip here, fail in CI), tz_at (the harness of ``make pytest-tz``).

Fixtures that hand these to tests are defined once, in ``tests/conftest.py``.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the checkout: shipped configs, units and schemas live here
