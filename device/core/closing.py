"""The context-manager half every driver shares: ``with Device(...) as d:`` closes it."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class Closing:
    """Mixin: ``__enter__`` returns the device, ``__exit__`` calls its idempotent ``close()``."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
