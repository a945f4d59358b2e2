"""scrypt PIN hashes: their cost, the string they are stored as, and checking a PIN against one.

Kept apart from the registry (``services/volunteers.py``, who is enrolled) and the file writer
(``services/volunteers_edit.py``) because both lean on the same rules, and these rules are the
security of the keypad: a random 16-byte salt per hash, a 32-byte result, cost parameters that
travel inside each string (entries written with other parameters keep verifying after
``DEFAULT_PARAMS`` changes), a memory cap so a hand-edited ``n`` cannot exhaust a 512 MB Pi, and
``hmac.compare_digest`` so a comparison's duration says nothing. No PIN and no hash value ever
reaches a message here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

__all__ = ["DEFAULT_PARAMS", "HASH_BYTES", "MAX_HASH_MEMORY", "MAX_WORKERS", "SALT_BYTES", "PinHash",
           "ScryptParams", "hash_problem", "map_on_workers", "parse_hash", "scrypt_digest"]

SALT_BYTES = 16
HASH_BYTES = 32
MAX_WORKERS = 4  # a Pi Zero 2 W has four cores
MAX_HASH_MEMORY = 16 * 1024 * 1024  # per hash: a hand-edited n must not exhaust a 512 MB Pi
_HASH = re.compile(r"scrypt\$n=(\d{1,8}),r=(\d{1,3}),p=(\d{1,3})\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)")
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost: memory 128*r*n bytes per hash; time roughly proportional to n*r*p."""

    n: int
    r: int
    p: int

    def problem(self) -> str | None:
        if self.n < 2 or self.n & (self.n - 1):
            return f"scrypt n={self.n} must be a power of two of at least 2"
        if not 1 <= self.r <= 32 or not 1 <= self.p <= 16:
            return f"scrypt r={self.r}, p={self.p} must be within r 1-32, p 1-16"
        if 128 * self.r * self.n > MAX_HASH_MEMORY:
            return (f"scrypt n={self.n}, r={self.r} needs {128 * self.r * self.n >> 20} MB per hash, "
                    f"more than the {MAX_HASH_MEMORY >> 20} MB allowed")
        return None


# ~2 ms per hash on the x86 CI box, ~20-25 ms on a Pi Zero 2 W: eight volunteers with duress
# PINs (16 hashes) stay under ~250 ms per keypad entry even if the 4 cores only double the speed.
DEFAULT_PARAMS = ScryptParams(n=2**10, r=8, p=1)


@dataclass(frozen=True)
class PinHash:
    """One stored hash, parsed; ``matches()`` compares in constant time."""

    params: ScryptParams
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    def matches(self, pin: bytes) -> bool:
        return hmac.compare_digest(scrypt_digest(pin, self.salt, self.params, len(self.digest)), self.digest)


def hash_problem(value: object) -> str | None:
    # Never quote the value: a technician may have typed a plain PIN here by mistake.
    if value is None:
        return "required (a hash written by `safehouse volunteer add`)"
    usage = ("must be scrypt$n=N,r=R,p=P$<salt base64>$<hash base64> as written by "
             "`safehouse volunteer add` (value not shown)")
    m = _HASH.fullmatch(value) if isinstance(value, str) else None
    if m is None:
        return usage
    problem = ScryptParams(int(m[1]), int(m[2]), int(m[3])).problem()
    if problem:
        return problem
    try:
        salt, digest = base64.b64decode(m[4], validate=True), base64.b64decode(m[5], validate=True)
    except binascii.Error:
        return usage
    if len(salt) < SALT_BYTES or not 16 <= len(digest) <= 64:
        return f"salt must be at least {SALT_BYTES} bytes and the hash 16-64 bytes"
    return None


def parse_hash(value: str) -> PinHash:
    m = _HASH.fullmatch(value)
    assert m is not None  # hash_problem() accepted it
    return PinHash(ScryptParams(int(m[1]), int(m[2]), int(m[3])), base64.b64decode(m[4]),
                 base64.b64decode(m[5]))


def scrypt_digest(pin: bytes, salt: bytes, params: ScryptParams, length: int) -> bytes:
    maxmem = 128 * params.r * (params.n + params.p + 2) + (1 << 20)
    return hashlib.scrypt(pin, salt=salt, n=params.n, r=params.r, p=params.p, maxmem=maxmem, dklen=length)


def map_on_workers(func: Callable[[_T], _R], items: Sequence[_T], workers: int | None) -> list[_R]:
    """``func`` over every item, on a few threads when there is more than one core to use."""
    count = min(len(items), os.cpu_count() or 1, MAX_WORKERS) if workers is None else workers
    if count <= 1 or len(items) <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="pin-hash") as pool:
        return list(pool.map(func, items))
