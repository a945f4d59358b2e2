"""What a keypad PIN check costs: one scrypt hash per (n, r, p), and one verify() at the defaults.

Usage: python -m bench.scrypt_cost [--volunteers 8] [--repeat 9]

verify() hashes the typed PIN against every stored PIN and duress hash, so its cost is
(volunteers + duress PINs) x one hash, divided by what the thread pool gains. A Pi Zero 2 W
(4 x Cortex-A53 at 1 GHz, 512 MB) is taken as 8-12x slower than this machine per hash.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safehouse.services.volunteers import DEFAULT_PARAMS, ScryptParams, VolunteerRegistry
from safehouse.services.volunteers_edit import add

CHOICES = [ScryptParams(2**n, 8, 1) for n in (10, 11, 12, 13, 14)] + [ScryptParams(2**12, 4, 1)]
PI_SLOWER = (8, 12)


def _samples_ms(func: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        func()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def one_hash_ms(params: ScryptParams, repeat: int) -> float:
    """Best of ``repeat``: on a shared box, load from elsewhere only ever adds time."""
    salt = os.urandom(16)
    maxmem = 128 * params.r * (params.n + params.p + 2) + (1 << 20)
    return min(_samples_ms(lambda: hashlib.scrypt(b"482913", salt=salt, n=params.n, r=params.r,
                                                  p=params.p, maxmem=maxmem, dklen=32), repeat))


def verify_ms(volunteers: int, repeat: int) -> dict[str, float]:
    """Median verify() at DEFAULT_PARAMS, every volunteer with a duress PIN: sequential vs pool.

    The cases are interleaved sample by sample, so a burst of load elsewhere hits them all.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "volunteers.toml"
        for i in range(volunteers):
            add(path, f"v{i:03d}", f"Volunteer {i}", f"{1000 + i}", f"{5000 + i}")
        registry = VolunteerRegistry.load(path)
        last = f"{5000 + volunteers - 1}"
        cases: dict[str, Callable[[], object]] = {
            "sequential": lambda: registry.verify("1000", workers=1),
            "pool, matched first": lambda: registry.verify("1000"),
            "pool, matched last": lambda: registry.verify(last),
            "pool, no match": lambda: registry.verify("99999999"),
        }
        samples: dict[str, list[float]] = {label: [] for label in cases}
        for _ in range(repeat):
            for label, case in cases.items():
                samples[label] += _samples_ms(case, 1)
        return {label: statistics.median(values) for label, values in samples.items()}


def run(volunteers: int = 8, repeat: int = 9) -> list[dict[str, Any]]:
    """Rows in bench/__main__.py's format (values in ms on this machine)."""
    rows: list[dict[str, Any]] = []
    for params in CHOICES:
        mark = "  (default)" if params == DEFAULT_PARAMS else ""
        rows.append({"figure": f"one hash n=2**{params.n.bit_length() - 1},r={params.r},p={params.p} "
                               f"({128 * params.n * params.r >> 20} MB){mark}",
                     "value": one_hash_ms(params, repeat), "unit": "ms/hash", "target": None})
    for label, ms in verify_ms(volunteers, repeat).items():
        rows.append({"figure": f"verify, {volunteers} volunteers + {volunteers} duress: {label}",
                     "value": ms, "unit": "ms", "target": None})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scrypt_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volunteers", type=int, default=8, help="enrolled, each with a duress PIN")
    parser.add_argument("--repeat", type=int, default=9, help="samples per figure (median)")
    args = parser.parse_args()
    lo, hi = PI_SLOWER
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"Pi Zero 2 W estimate = {lo}-{hi}x")
    print(f"{'figure':<62} {'here':>9}  {'Zero 2 W est.':>15}")
    rows = run(args.volunteers, args.repeat)
    for row in rows:
        ms = row["value"]
        pi = f"{ms * lo:>5.0f}-{ms * hi:<5.0f} ms" if "pool" not in row["figure"] else ""
        print(f"{row['figure']:<62} {ms:>6.1f} ms  {pi:>15}")
    per_hash = next(r["value"] for r in rows if "(default)" in r["figure"])
    hashes = 2 * args.volunteers
    print(f"Zero 2 W verify at the defaults: {hashes} hashes x {per_hash * lo:.0f}-{per_hash * hi:.0f} ms "
          f"on 4 cores sharing one memory bus (pool gain assumed 2-3x, unmeasured) = "
          f"{hashes * per_hash * lo / 3:.0f}-{hashes * per_hash * hi / 2:.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
