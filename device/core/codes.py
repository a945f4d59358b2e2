"""Ademco Contact ID event codes the kiosk uses, so precinct software can map our events.

Only codes with a real Contact ID meaning are listed; lifecycle events (ack, resolved,
escalated, help_coming) have none and carry ``code: null``.
"""

from __future__ import annotations

PANIC = 120  # panic alarm
DURESS = 121  # duress: silent alarm
TAMPER = 137  # enclosure tamper
STORAGE_DAMAGED = 303  # 'RAM checksum bad': a state file failed its integrity check (quarantined, salvaged)
PERIPHERAL_TROUBLE = 330  # system peripheral trouble: the light box lamp is dark
KEYPAD_JAM = 344  # jam detect: the keypad line floods (the wired form of jamming); not 330, so
#                  its restore can never be read as the end of a keypad_lost
COMM_TROUBLE = 350
SENSOR_TROUBLE = 380  # sensor trouble: panic button stuck
WRONG_CODE = 461  # wrong code entry (keypad lockout)
MANUAL_TEST = 601  # manual trigger test report: a test alarm
PERIODIC_TEST = 602  # a self-test that passed
TEST_WITH_TROUBLE = 608  # a self-test that found a fault
