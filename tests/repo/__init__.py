"""Tests of the repository itself: docs, Makefile, installer, units, playbook."""
