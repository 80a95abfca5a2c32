"""Settlement: one per request, the same numbers reconciled and recorded, the key's last use written with
them, writes that survive cancellation and never raise; what a request is charged when Azure's usage never
came; tokens beyond a reservation charged to the window the request ends in."""

from __future__ import annotations

import asyncio
import logging

import pytest

from chatgate.gateway.auth import Authenticator, Principal
from chatgate.gateway.settlement import Settlement, StreamOutcome, hides_reasoning, utc_day
from chatgate.limits import tokens
from chatgate.limits.ratelimit import Limits, RateLimiter, counter_key
from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import UsageLedger, UsageRecord
from chatgate.stores.usage_dynamodb import UsageStoreError
from tests.fakes import MemoryCounters, MemoryKeyStore, MemoryUsage

T0 = 1_700_000_040.0  # the start of a 60 s window
LIMITS = Limits(requests=10, tokens=10_000)


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def settlement(
    store: object,
    *,
    model: str = "gpt-4o",
    prompt: int = 40,
    reserve: int = 1000,
    clock: Clock | None = None,
    keys: MemoryKeyStore | None = None,
    use_to_record: int | None = None,
) -> tuple[Settlement, MemoryCounters]:
    counters = MemoryCounters()
    limiter = RateLimiter(counters, window_seconds=60, clock=clock or Clock())
    reservation = await limiter.reserve("acme", model, reserve, LIMITS)
    caller = Principal("acme", "k1", use_to_record=use_to_record)
    settle = Settlement(
        caller,
        authenticator=Authenticator(keys or MemoryKeyStore()),
        limiter=limiter,
        ledger=UsageLedger(store),  # type: ignore[arg-type]
    )
    settle.admitted(reservation, prompt)
    settle.day = "2025-03-01"
    return settle, counters


def window_tokens(counters: MemoryCounters, start: float = T0) -> int:
    return counters.counts[counter_key("acme", "gpt-4o", int(start))].tokens


async def test_a_completed_request_is_reconciled_and_recorded_with_azures_numbers() -> None:
    store = MemoryUsage()
    settle, counters = await settlement(store)
    await settle.completed(TokenUsage(38, 12, "azure"))
    assert window_tokens(counters) == 50
    assert store.records[("acme", "2025-03-01", "gpt-4o")] == UsageRecord(
        "acme", "2025-03-01", "gpt-4o", requests=1, prompt_tokens=38, completion_tokens=12
    )


async def test_the_keys_last_use_is_written_with_the_settlement_when_due() -> None:
    keys = MemoryKeyStore()
    settle, _ = await settlement(MemoryUsage(), keys=keys, use_to_record=1_700_000_000)
    await settle.completed(TokenUsage(1, 1, "azure"))
    assert keys.touches == [("k1", 1_700_000_000)]


async def test_a_disconnected_stream_is_counted_and_marked_so() -> None:
    store = MemoryUsage()
    settle, counters = await settlement(store, prompt=40)
    await settle.stream_ended(StreamOutcome(status="disconnected", relayed_text=["Soft", " paws", " and"]))
    completion = tokens.count_text(tokens.encoding_for("gpt-4o"), "Soft paws and")
    record = store.records[("acme", "2025-03-01", "gpt-4o")]
    assert (record.prompt_tokens, record.completion_tokens) == (40, completion)
    assert (record.counted_requests, record.counted_prompt_tokens) == (1, 40)
    assert window_tokens(counters) == 40 + completion  # exactly what was recorded


@pytest.mark.parametrize("model", ["o3-mini", "o4-mini", "o1-preview", "gpt-5", "gpt-5-mini"])
async def test_an_abandoned_reasoning_stream_is_charged_at_least_its_reservation(model: str) -> None:
    store = MemoryUsage()
    settle, counters = await settlement(store, model=model, prompt=40, reserve=2040)
    await settle.stream_ended(StreamOutcome(status="disconnected", relayed_text=["Hi"]))
    [counts] = counters.counts.values()
    assert counts.tokens == 2040  # the hidden reasoning tokens Azure may have billed
    record = store.records[("acme", "2025-03-01", model)]
    assert (record.prompt_tokens, record.completion_tokens) == (40, 2000)
    assert record.counted_completion_tokens == 2000  # marked as chatgate's own count


def test_which_models_hide_reasoning() -> None:
    assert all(hides_reasoning(m) for m in ("o1", "o1-preview", "o3-mini", "o4-mini", "gpt-5", "gpt-5-nano"))
    assert not any(hides_reasoning(m) for m in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-35-turbo", "omni"))


async def test_an_upstream_failure_reconciles_to_zero_and_records_nothing() -> None:
    store = MemoryUsage()
    settle, counters = await settlement(store)
    await settle.abandoned()
    assert window_tokens(counters) == 0 and store.records == {}


async def test_settling_twice_counts_once() -> None:
    store = MemoryUsage()
    settle, counters = await settlement(store)
    await settle.completed(TokenUsage(1, 1, "azure"))
    await settle.completed(TokenUsage(1, 1, "azure"))
    await settle.abandoned()
    assert window_tokens(counters) == 2
    assert store.records[("acme", "2025-03-01", "gpt-4o")].requests == 1


async def test_tokens_beyond_the_reservation_go_to_the_window_the_request_ends_in() -> None:
    clock = Clock(T0 + 50)
    settle, counters = await settlement(MemoryUsage(), prompt=40, reserve=1064, clock=clock)
    clock.now = T0 + 75  # the answer ran on into the next window
    await settle.completed(TokenUsage(40, 2000, "azure"))
    assert window_tokens(counters, T0) == 1064  # the admitting window keeps the reservation
    assert window_tokens(counters, T0 + 60) == 2040 - 1064  # the overshoot is felt where it happened


async def test_unused_reservation_goes_back_to_the_window_that_holds_it() -> None:
    clock = Clock(T0 + 50)
    settle, counters = await settlement(MemoryUsage(), prompt=40, reserve=1064, clock=clock)
    clock.now = T0 + 75
    await settle.completed(TokenUsage(40, 10, "azure"))
    assert window_tokens(counters, T0) == 50
    assert counter_key("acme", "gpt-4o", int(T0 + 60)) not in counters.counts


class FailingUsage:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def add(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, *, marker: str, api: str = ""
    ) -> bool:
        raise self.error


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (UsageStoreError("DynamoDB UpdateItem failed: ThrottlingException"), "failed"),
        (UsageStoreError("DynamoDB UpdateItem outcome unknown: ReadTimeout", maybe_applied=True), "unknown"),
    ],
)
async def test_a_record_that_does_not_settle_is_one_unsettled_line_and_the_reservation_still_settles(
    caplog: pytest.LogCaptureFixture, error: Exception, outcome: str
) -> None:
    settle, counters = await settlement(FailingUsage(error))
    with caplog.at_level(logging.ERROR):
        await settle.completed(TokenUsage(30, 3, "azure"))
    assert window_tokens(counters) == 33
    (line,) = [record for record in caplog.records if record.getMessage().startswith("unsettled")]
    assert f"usage {outcome}" in line.getMessage()
    record = line.fields["unsettled"]  # type: ignore[attr-defined]
    (write,) = record["writes"]
    assert write["kind"] == "usage" and write["outcome"] == outcome
    assert write["marker"] == settle.reservation.marker  # type: ignore[union-attr]
    assert write["fields"] == {
        "workspace_id": "acme",
        "day": "2025-03-01",
        "model": "gpt-4o",
        "prompt_tokens": 30,
        "completion_tokens": 3,
        "source": "azure",
        "api": "completions",  # which usage endpoint the record belongs to: replayed as it was
    }
    assert str(error) in write["error"]


class SlowUsage(MemoryUsage):
    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def add(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = "completions",
    ) -> bool:
        self.started.set()
        await self.release.wait()
        return await super().add(workspace_id, day, model, usage, marker=marker, api=api)


async def test_a_settlement_in_flight_completes_when_its_caller_is_cancelled() -> None:
    store = SlowUsage()
    ledger_settle, _ = await settlement(store)
    task = asyncio.create_task(ledger_settle.completed(TokenUsage(5, 5, "azure")))
    await store.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.release.set()
    await ledger_settle._ledger.drain()  # type: ignore[union-attr]
    assert store.records[("acme", "2025-03-01", "gpt-4o")].total_tokens == 10


def test_days_are_utc() -> None:
    assert utc_day(T0) == "2023-11-14"
    assert utc_day(1_700_006_400.0) == "2023-11-15"  # 00:00:00 UTC
