"""Tests of the runtime: config, the daemon in-process, the event writer."""
