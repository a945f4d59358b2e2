"""What a test does when something real it needs is missing: skip on a workstation, fail in CI.

CI (``CI=true``) installs every tool the suite uses (``make test``: APT_PACKAGES in the
Makefile), so there a missing tool is a broken machine, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(message: str) -> NoReturn:
    """Something real the test needs is missing: in CI that fails the test, elsewhere it skips."""
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def require_tool(name: str) -> str:
    """Path of a tool the test needs (see ``unavailable``)."""
    path = shutil.which(name)
    if path:
        return path
    unavailable(f"{name} is not installed (make test installs it: see APT_PACKAGES in the Makefile)")
