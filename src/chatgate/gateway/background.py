"""Writes that outlive their request: a reconcile, a usage record, a key's last use.

Each is started as a task that a cancelled caller (a client that went away) cannot interrupt, and is
remembered until it finishes so that `drain()` can wait for all of them at shutdown and in tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundWrites:
    def __init__(self) -> None:
        self._pending: set[asyncio.Task[Any]] = set()

    def start(self, write: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Run `write` in the background; the caller does not wait."""
        task = asyncio.ensure_future(write)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def run(self, write: Coroutine[Any, Any, T]) -> T:
        """Run `write` and wait for it (its result); if the caller is cancelled, the write still completes."""
        return await asyncio.shield(self.start(write))

    async def drain(self) -> None:
        """Wait for every write still in flight."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
