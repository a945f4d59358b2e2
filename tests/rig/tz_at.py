"""Print a fixed-offset time zone in which the local hour is now HOUR (used by `make test`).

The suite's time-of-day tests must pass whenever CI runs. `make test` runs them again under a zone
where it is night now and one where it is day now, so a test that secretly reads the local wall
clock fails on every run instead of only between 19:00 and 07:00. This script is the harness, not
a test: reading the wall clock here is its job.
"""

from __future__ import annotations

import sys
import time


def zone_for(hour: int, utc_hour: int) -> str:
    """A POSIX-style Etc/GMT zone (its sign is inverted: Etc/GMT-3 is UTC+3) giving ``hour``."""
    offset = (hour - utc_hour) % 24
    if offset > 14:  # Etc zones span UTC-12 .. UTC+14
        offset -= 24
    if offset == 0:
        return "Etc/GMT"
    return f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit() or not 0 <= int(sys.argv[1]) <= 23:
        sys.exit("usage: python -m tests.rig.tz_at HOUR   (0-23: the local hour wanted now)")
    print(zone_for(int(sys.argv[1]), time.gmtime().tm_hour))
