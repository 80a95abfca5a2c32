"""Accounting: one settlement per request, the same numbers reconciled and recorded, writes that survive
cancellation and never raise."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chatgate import tokens
from chatgate.ratelimit import Limits, RateLimiter
from chatgate.streaming import StreamOutcome
from chatgate.tokens import TokenUsage
from chatgate.usage import Accounting, UsageLedger, UsageRecord, utc_day
from tests.fakes import MemoryCounters, MemoryUsage

T0 = 1_700_000_040.0


async def accounting(
    store: object, prompt: int = 40, reserve: int = 1000
) -> tuple[Accounting, MemoryCounters]:
    counters = MemoryCounters()
    limiter = RateLimiter(counters, window_seconds=60, clock=lambda: T0)
    reservation = await limiter.reserve("acme", "gpt-4o", reserve, Limits(requests=10, tokens=10_000))
    ledger = UsageLedger(store)  # type: ignore[arg-type]
    return Accounting(limiter, reservation, "gpt-4o", prompt, ledger, day="2025-03-01"), counters


def window_tokens(counters: MemoryCounters) -> int:
    [counts] = counters.counts.values()
    return counts.tokens


async def test_a_completed_request_is_reconciled_and_recorded_with_azures_numbers() -> None:
    store = MemoryUsage()
    account, counters = await accounting(store)
    await account.completed({"prompt_tokens": 38, "completion_tokens": 12, "total_tokens": 50})
    assert window_tokens(counters) == 50
    assert store.records[("acme", "2025-03-01", "gpt-4o")] == UsageRecord(
        "acme", "2025-03-01", "gpt-4o", requests=1, prompt_tokens=38, completion_tokens=12
    )


async def test_a_disconnected_stream_is_counted_and_marked_so() -> None:
    store = MemoryUsage()
    account, counters = await accounting(store, prompt=40)
    outcome = StreamOutcome(status="disconnected", completion_text=["Soft", " paws", " and"], chunks=4)
    await account.stream_finished(outcome)
    completion = tokens.count_text(tokens.encoding_for("gpt-4o"), "Soft paws and")
    record = store.records[("acme", "2025-03-01", "gpt-4o")]
    assert (record.prompt_tokens, record.completion_tokens) == (40, completion)
    assert (record.counted_requests, record.counted_prompt_tokens) == (1, 40)
    assert window_tokens(counters) == 40 + completion  # exactly what was recorded


async def test_an_upstream_failure_reconciles_to_zero_and_records_nothing() -> None:
    store = MemoryUsage()
    account, counters = await accounting(store)
    await account.failed()
    assert window_tokens(counters) == 0 and store.records == {}


async def test_settling_twice_counts_once() -> None:
    store = MemoryUsage()
    account, counters = await accounting(store)
    await account.completed({"prompt_tokens": 1, "completion_tokens": 1})
    await account.completed({"prompt_tokens": 1, "completion_tokens": 1})
    await account.failed()
    assert window_tokens(counters) == 2
    assert store.records[("acme", "2025-03-01", "gpt-4o")].requests == 1


class FailingUsage:
    async def add(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        raise RuntimeError("DynamoDB UpdateItem failed: ThrottlingException")


async def test_a_failing_record_is_logged_and_the_reservation_still_settles(
    caplog: pytest.LogCaptureFixture,
) -> None:
    account, counters = await accounting(FailingUsage())
    with caplog.at_level(logging.ERROR):
        await account.completed({"prompt_tokens": 30, "completion_tokens": 3})
    assert window_tokens(counters) == 33
    assert "usage record failed for workspace acme model gpt-4o day 2025-03-01" in caplog.text
    assert "ThrottlingException" in caplog.text


class SlowUsage(MemoryUsage):
    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def add(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        self.started.set()
        await asyncio.sleep(0.05)
        await super().add(workspace_id, day, model, usage)


async def test_a_record_in_flight_completes_when_its_caller_is_cancelled() -> None:
    store = SlowUsage()
    account, _ = await accounting(store)
    task = asyncio.create_task(account.completed({"prompt_tokens": 5, "completion_tokens": 5}))
    await store.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert account.ledger is not None
    await account.ledger.drain()
    assert store.records[("acme", "2025-03-01", "gpt-4o")].total_tokens == 10


def test_days_are_utc() -> None:
    assert utc_day(T0) == "2023-11-14"
    assert utc_day(1_700_006_400.0) == "2023-11-15"  # 00:00:00 UTC
