"""Tests of the pure core: decide(), the keypad grammar, precinct commands, bounded input."""
