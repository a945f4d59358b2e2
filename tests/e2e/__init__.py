"""Tests of the whole kiosk: real daemon, real mosquitto, PTYs, ALSA."""
