"""Two lookups at once: on a cold instance each is a round trip (to DynamoDB, to Secrets Manager), and a
request that needs both should wait for one, not two."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

A = TypeVar("A")
B = TypeVar("B")


async def both(first: Coroutine[Any, Any, A], second: Coroutine[Any, Any, B]) -> tuple[A, B]:
    """Both results, run at once but answered as if awaited one after the other: the first's error wins
    over the second's (the second is then cancelled), and cancelling the caller cancels both.

    Only the second becomes a task; the first runs in the caller's. On a warm instance both are cache hits
    that finish without waiting, and a task costs a pass of the event loop (about 10 microseconds alone,
    0.2 ms in a busy server for two)."""
    task = asyncio.ensure_future(second)
    try:
        return await first, await task
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # nothing left running
        elif not task.cancelled():
            task.exception()  # its outcome is taken: an error the first's overrode is not reported as lost
