"""Tests of services on real files, sockets and brokers."""
