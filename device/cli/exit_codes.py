"""The CLI's exit statuses, one definition for every subcommand module.

0 ok, ``EX_FAIL`` refused or daemon unreachable, ``EX_USAGE`` bad arguments (argparse's own),
and ``EX_CONFIG`` (78, ``device/runtime/config.py``) a configuration error.
"""

from __future__ import annotations

EX_FAIL = 1
EX_USAGE = 2
