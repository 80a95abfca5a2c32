"""chatgate.concurrently.both: two awaitables at once, answered as if one after the other."""

from __future__ import annotations

import asyncio

import pytest

from chatgate.concurrently import both


async def test_both_run_at_once() -> None:
    started = [asyncio.Event(), asyncio.Event()]

    async def meet(mine: int, other: int) -> int:
        started[mine].set()
        await asyncio.wait_for(started[other].wait(), timeout=5)  # times out if run one after the other
        return mine

    assert await both(meet(0, 1), meet(1, 0)) == (0, 1)


async def test_the_first_ones_error_wins_even_when_the_second_fails_sooner() -> None:
    async def fails_late() -> None:
        await asyncio.sleep(0.05)
        raise KeyError("first")

    async def fails_at_once() -> None:
        raise ValueError("second")

    with pytest.raises(KeyError):
        await both(fails_late(), fails_at_once())


async def test_the_seconds_error_when_the_first_succeeds() -> None:
    async def ok() -> int:
        return 1

    async def fails() -> None:
        raise ValueError("second")

    with pytest.raises(ValueError, match="second"):
        await both(ok(), fails())


async def test_a_failure_of_the_first_cancels_the_second() -> None:
    cancelled = asyncio.Event()

    async def fails() -> None:
        await asyncio.sleep(0.01)  # the second is under way by then
        raise KeyError("first")

    async def waits() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(KeyError):
        await both(fails(), waits())
    assert cancelled.is_set()


async def test_cancelling_the_caller_cancels_both() -> None:
    cancelled: list[int] = []

    async def waits(mine: int) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(mine)
            raise

    caller = asyncio.ensure_future(both(waits(0), waits(1)))
    await asyncio.sleep(0.01)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert sorted(cancelled) == [0, 1]
