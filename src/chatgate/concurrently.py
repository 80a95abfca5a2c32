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
    over the second's (the second is then cancelled), and cancelling the caller cancels both."""
    tasks = (asyncio.ensure_future(first), asyncio.ensure_future(second))
    try:
        return await tasks[0], await tasks[1]
    finally:
        for task in tasks:
            task.cancel()  # a no-op for a finished task
        await asyncio.gather(*tasks, return_exceptions=True)  # nothing left running or unretrieved
