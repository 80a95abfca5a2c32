"""The rate limiter's behaviour with an in-memory counter store and a controllable clock."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatgate.errors import RateLimitExceeded, ServiceUnavailable
from chatgate.limits.ratelimit import (
    AddResult,
    CounterStoreError,
    Counts,
    Limits,
    RateLimiter,
    Reservation,
    ReservationInDoubt,
    counter_key,
    format_duration,
)
from chatgate.settings import Settings

T0 = 1_700_000_040.0  # a window start for windows of 1, 2, 10 and 60 seconds


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class MemoryStore:
    """A CounterStore in a dict; every call is atomic because nothing awaits inside it. Markers are kept
    per item beside the counters."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, int]] = {}
        self.marks: dict[str, set[str]] = {}
        self.writes = 0
        self.fail: Exception | None = None

    async def try_add(
        self,
        key: str,
        *,
        requests: int,
        tokens: int,
        max_requests: int,
        max_tokens: int,
        expires_at: int,
        marker: str,
    ) -> AddResult:
        if self.fail:
            raise self.fail
        self.writes += 1
        item = self.items.setdefault(key, {"r": 0, "t": 0, "ttl": expires_at})
        marks = self.marks.setdefault(key, set())
        if f"p_{marker}" in marks:
            return AddResult(True, Counts(item["r"], item["t"]))
        if item["r"] + requests > max_requests or item["t"] + tokens > max_tokens:
            return AddResult(False, Counts(item["r"], item["t"]))
        item["r"] += requests
        item["t"] += tokens
        marks.add(f"p_{marker}")
        return AddResult(True, Counts(item["r"], item["t"]))

    async def settle(self, key: str, *, marker: str, requests: int, tokens: int) -> bool:
        if self.fail:
            raise self.fail
        self.writes += 1
        marks = self.marks.get(key, set())
        if f"p_{marker}" not in marks:
            return False
        marks.discard(f"p_{marker}")
        item = self.items[key]
        item["r"] += requests
        item["t"] += tokens
        return True

    async def add_tokens(self, key: str, tokens: int, *, expires_at: int, marker: str) -> bool:
        if self.fail:
            raise self.fail
        self.writes += 1
        item = self.items.setdefault(key, {"r": 0, "t": 0, "ttl": expires_at})
        marks = self.marks.setdefault(key, set())
        if f"o_{marker}" in marks:
            return False
        marks.add(f"o_{marker}")
        item["t"] += tokens
        return True

    async def read(self, key: str) -> Counts:
        if self.fail:
            raise self.fail
        item = self.items.get(key, {"r": 0, "t": 0})
        return Counts(item["r"], item["t"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def limiter(store: MemoryStore, clock: Clock, window: int = 60, fail_open: bool = False) -> RateLimiter:
    return RateLimiter(store, window_seconds=window, fail_open=fail_open, clock=clock)


async def refused(rl: RateLimiter, tokens: int, limits: Limits, ws: str = "ws1") -> RateLimitExceeded:
    with pytest.raises(RateLimitExceeded) as info:
        await rl.reserve(ws, "gpt-4o", tokens, limits)
    return info.value


async def test_requests_over_the_limit_get_a_429_that_names_the_limit_and_when_to_retry(store, clock):
    rl, limits = limiter(store, clock), Limits(requests=3, tokens=10_000)
    for _ in range(3):
        await rl.reserve("ws1", "gpt-4o", 10, limits)
    clock.now += 12.5
    error = await refused(rl, 10, limits)
    assert error.status_code == 429
    body = error.to_dict()["error"]
    assert body["code"] == "rate_limit_exceeded" and body["type"] == "requests"
    assert "requests per min (RPM)" in body["message"] and "Limit 3" in body["message"]
    assert "Please try again in 47.51s" in body["message"]
    assert error.headers["retry-after"] == "48" and error.headers["retry-after-ms"] == "47510"
    assert error.headers["x-ratelimit-remaining-requests"] == "0"
    assert error.headers["x-ratelimit-reset-requests"] == "47.5s"


async def test_tokens_over_the_limit_get_a_429_of_type_tokens(store, clock):
    rl, limits = limiter(store, clock, window=10), Limits(requests=100, tokens=1000)
    await rl.reserve("ws1", "gpt-4o", 700, limits)
    error = await refused(rl, 400, limits)
    body = error.to_dict()["error"]
    assert body["type"] == "tokens"
    assert "tokens per 10s window" in body["message"]
    assert "Limit 1000, Used 700, Requested 400" in body["message"]
    assert error.headers["retry-after"] == "11"
    assert error.headers["x-ratelimit-remaining-tokens"] == "300"
    # A smaller request still fits in what is left.
    await rl.reserve("ws1", "gpt-4o", 300, limits)


async def test_headers_count_down_and_show_when_the_window_resets(store, clock):
    rl, limits = limiter(store, clock), Limits(requests=3, tokens=1000)
    seen = []
    for step in range(3):
        reservation = await rl.reserve("ws1", "gpt-4o", 100, limits)
        seen.append(reservation.headers())
        clock.now += 0.25 * (step + 1)
    assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["2", "1", "0"]
    assert [h["x-ratelimit-remaining-tokens"] for h in seen] == ["900", "800", "700"]
    assert [h["x-ratelimit-reset-requests"] for h in seen] == ["1m0s", "59.75s", "59.25s"]
    assert seen[0]["x-ratelimit-limit-requests"] == "3" and seen[0]["x-ratelimit-limit-tokens"] == "1000"
    assert set(seen[0]) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
    }


@pytest.mark.parametrize("kind", ["requests", "tokens"])
async def test_retry_hint_is_the_earliest_time_a_retry_succeeds(store, clock, kind):
    rl = limiter(store, clock, window=2)
    limits = Limits(requests=2, tokens=1000) if kind == "requests" else Limits(requests=100, tokens=250)
    clock.now += 0.3
    while True:
        try:
            await rl.reserve("ws1", "gpt-4o", 100, limits)
        except RateLimitExceeded as exc:
            error = exc
            break
    assert error.error_type == kind
    wait_ms = int(error.headers["retry-after-ms"])
    assert int(error.headers["retry-after"]) == math.ceil(wait_ms / 1000)
    clock.now += (wait_ms - 15) / 1000  # a little earlier than the hint: still refused
    await refused(rl, 100, limits)
    clock.now += 0.015
    await rl.reserve("ws1", "gpt-4o", 100, limits)


async def test_a_request_larger_than_the_token_limit_says_so_without_retry_hint(store, clock):
    rl, limits = limiter(store, clock), Limits(requests=10, tokens=1000)
    await rl.reserve("ws1", "gpt-4o", 200, limits)
    error = await refused(rl, 1001, limits)
    body = error.to_dict()["error"]
    assert body["type"] == "tokens" and body["code"] == "rate_limit_exceeded"
    assert body["message"].startswith("Request too large for gpt-4o")
    assert "Limit 1000, Requested 1001" in body["message"]
    assert "retry-after" not in error.headers and "retry-after-ms" not in error.headers
    assert error.headers["x-ratelimit-remaining-tokens"] == "800"
    assert store.items[counter_key("ws1", "gpt-4o", int(T0))] == {
        "r": 1,
        "t": 200,
        "ttl": int(T0) + 60 + 3600,
    }


async def test_a_zero_request_limit_refuses_without_retry_hint(store, clock):
    error = await refused(limiter(store, clock), 1, Limits(requests=0, tokens=1000))
    assert error.error_type == "requests" and "retry-after" not in error.headers
    assert "not allowed" in error.message


async def test_limits_are_per_workspace_and_model_and_overrides_apply(store, clock):
    rl = limiter(store, clock)
    small, big = Limits(requests=1, tokens=1000), Limits(requests=5, tokens=1000)
    await rl.reserve("ws1", "gpt-4o", 1, small)
    await refused(rl, 1, small)
    await rl.reserve("ws1", "gpt-4.1", 1, small)  # another model: its own counter
    await rl.reserve("ws2", "gpt-4o", 1, small)  # another workspace: its own counter
    await rl.reserve("ws1", "gpt-4o", 1, big)  # an override raising the limit takes effect at once


async def test_reconcile_corrects_down_and_up(store, clock):
    rl, limits = limiter(store, clock), Limits(requests=100, tokens=1000)
    reservation = await rl.reserve("ws1", "gpt-4o", 600, limits)
    await rl.reconcile(reservation, 100)  # used less than reserved: 500 tokens come back
    second = await rl.reserve("ws1", "gpt-4o", 800, limits)
    assert second.headers()["x-ratelimit-remaining-tokens"] == "100"
    await rl.reconcile(second, 880)  # used more than reserved: counted
    error = await refused(rl, 30, limits)
    assert "Used 980" in error.message


async def test_reconcile_once_and_a_write_sent_again_changes_nothing(store, clock):
    rl, limits = limiter(store, clock), Limits(requests=100, tokens=1000)
    reservation = await rl.reserve("ws1", "gpt-4o", 300, limits)
    writes = store.writes
    assert await rl.reconcile(reservation, 300) == []  # one write: it ends the admission (its marker)
    await rl.reconcile(reservation, 10)  # a second call (say, a disconnect after the end) is ignored
    assert store.writes == writes + 1
    assert store.marks[reservation.key] == set()
    # The same settlement sent again (a retry whose first answer was lost, a replay) applies nothing.
    assert not await store.settle(reservation.key, marker=reservation.marker, requests=0, tokens=-290)
    assert store.items[reservation.key]["t"] == 300


async def test_an_admission_in_doubt_is_a_503_and_released_if_it_was_applied(store, clock):
    class LostAnswer(MemoryStore):  # applied, but the answer never came back
        async def try_add(self, key: str, **kwargs: Any) -> AddResult:
            await super().try_add(key, **kwargs)
            raise CounterStoreError("DynamoDB UpdateItem outcome unknown: ReadTimeout", maybe_applied=True)

    store = LostAnswer()
    rl, limits = limiter(store, clock), Limits(requests=100, tokens=1000)
    with pytest.raises(ReservationInDoubt) as caught:
        await rl.reserve("ws1", "gpt-4o", 300, limits)
    assert caught.value.status_code == 503
    doubt = caught.value.reservation
    assert store.items[doubt.key] == {"r": 1, "t": 300, "ttl": doubt.expires_at}  # charged meanwhile
    assert await rl.reconcile(doubt, 0) == []
    assert store.items[doubt.key]["r"] == 0 and store.items[doubt.key]["t"] == 0  # released, both


async def test_an_admission_refused_before_it_was_sent_is_a_plain_503(store, clock):
    store.fail = CounterStoreError("DynamoDB UpdateItem failed: ConnectError", maybe_applied=False)
    rl = limiter(store, clock)
    with pytest.raises(ServiceUnavailable) as caught:
        await rl.reserve("ws1", "gpt-4o", 300, Limits(requests=100, tokens=1000))
    assert not isinstance(caught.value, ReservationInDoubt)


async def test_reconcile_goes_to_the_window_of_the_reservation(store, clock):
    rl, limits = limiter(store, clock, window=1), Limits(requests=100, tokens=1000)
    reservation = await rl.reserve("ws1", "gpt-4o", 900, limits)
    clock.now += 5  # a long stream ends in a later window
    fresh = await rl.reserve("ws1", "gpt-4o", 900, limits)
    await rl.reconcile(reservation, 10)
    assert store.items[reservation.key]["t"] == 10 and store.items[fresh.key]["t"] == 900


async def test_reconcile_never_raises_and_returns_what_did_not_settle(store, clock):
    rl = limiter(store, clock)
    reservation = await rl.reserve("ws1", "gpt-4o", 300, Limits(requests=100, tokens=1000))
    store.fail = CounterStoreError(
        "DynamoDB UpdateItem outcome unknown: InternalServerError", maybe_applied=True
    )
    (write,) = await rl.reconcile(reservation, 50)
    assert (write.kind, write.outcome, write.marker) == ("reconcile", "unknown", reservation.marker)
    assert write.fields == {"key": reservation.key, "requests": 0, "tokens": -250}
    assert "InternalServerError" in write.error


async def test_reconcile_completes_even_when_the_caller_is_cancelled(clock):
    class SlowStore(MemoryStore):
        async def settle(self, key: str, *, marker: str, requests: int, tokens: int) -> bool:
            await asyncio.sleep(0.05)
            return await super().settle(key, marker=marker, requests=requests, tokens=tokens)

    store = SlowStore()
    rl = limiter(store, clock)
    reservation = await rl.reserve("ws1", "gpt-4o", 300, Limits(requests=100, tokens=1000))
    task = asyncio.ensure_future(rl.reconcile(reservation, 40))  # e.g. the client disconnected
    await asyncio.sleep(0.01)
    task.cancel()
    await rl.drain()
    assert store.items[reservation.key]["t"] == 40


async def test_store_failure_is_a_503_with_retry_hint_and_is_logged(store, clock, caplog):
    store.fail = CounterStoreError("DynamoDB UpdateItem failed: ProvisionedThroughputExceededException")
    rl = limiter(store, clock)
    with (
        caplog.at_level(logging.ERROR, logger="chatgate.limits.ratelimit"),
        pytest.raises(ServiceUnavailable) as info,
    ):
        await rl.reserve("ws1", "gpt-4o", 10, Limits(requests=10, tokens=1000))
    assert info.value.status_code == 503
    assert info.value.headers == {"retry-after": "1", "retry-after-ms": "1000"}
    assert "ProvisionedThroughputExceededException" not in info.value.message
    assert "ProvisionedThroughputExceededException" in caplog.text


async def test_fail_open_admits_and_warns_when_the_store_fails(store, clock, caplog):
    store.fail = CounterStoreError("DynamoDB UpdateItem failed: EndpointConnectionError")
    rl = limiter(store, clock, fail_open=True)
    with caplog.at_level(logging.WARNING, logger="chatgate.limits.ratelimit"):
        reservation = await rl.reserve("ws1", "gpt-4o", 10, Limits(requests=10, tokens=1000))
    assert "fail-open" in caplog.text
    assert reservation.headers()["x-ratelimit-remaining-requests"] == "10"
    await rl.reconcile(reservation, 500)  # nothing was counted, nothing to correct
    assert store.items == {}


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=60),
    window=st.sampled_from([1, 2, 10, 60]),
    phase=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_steady_traffic_at_90_percent_is_never_refused(limit, window, phase):
    async def run() -> None:
        clock, store = Clock(), MemoryStore()
        rl = limiter(store, clock, window=window)
        limits = Limits(requests=limit, tokens=100 * limit)
        period = window / (0.9 * limit)  # 90% of both limits: 100 tokens per request
        for i in range(int(3 * 0.9 * limit) + 2):  # three windows' worth
            clock.now = T0 + (phase + i) * period
            reservation = await rl.reserve("ws", "gpt-4o", 100, limits)
            await rl.reconcile(reservation, 100)

    asyncio.run(run())


@settings(max_examples=60, deadline=None)
@given(
    limit=st.integers(min_value=1, max_value=8),
    offsets=st.lists(st.floats(min_value=0, max_value=3.999), min_size=1, max_size=60),
)
def test_a_bursty_client_gets_at_most_limit_per_window_and_twice_it_in_any_window_length(limit, offsets):
    window = 1
    admitted: list[float] = []

    async def run() -> None:
        clock, store = Clock(), MemoryStore()
        rl = limiter(store, clock, window=window)
        for offset in sorted(offsets):
            clock.now = T0 + offset
            try:
                await rl.reserve("ws", "gpt-4o", 1, Limits(requests=limit, tokens=10_000))
                admitted.append(offset)
            except RateLimitExceeded:
                pass

    asyncio.run(run())
    for start in admitted:
        assert sum(1 for t in admitted if start <= t < start + window) <= 2 * limit
    for k in range(4):
        assert sum(1 for t in admitted if k <= t < k + 1) <= limit


async def test_the_burst_bound_is_reached_across_a_window_boundary(store, clock):
    rl, limits = limiter(store, clock), Limits(requests=5, tokens=10_000)
    admitted = 0
    for now in (T0 + 59.999, T0 + 60.001):  # 2 ms apart, either side of a boundary
        clock.now = now
        for _ in range(10):
            try:
                await rl.reserve("ws1", "gpt-4o", 1, limits)
                admitted += 1
            except RateLimitExceeded:
                pass
    assert admitted == 2 * limits.requests


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.25, "250ms"),
        (0.0001, "1ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.999, "59.999s"),
        (360, "6m0s"),
        (61.25, "1m1.25s"),
        (3600, "1h0m0s"),
    ],
)
def test_durations_are_formatted_like_openai(seconds, text):
    assert format_duration(seconds) == text


def test_defaults_come_from_settings(monkeypatch):
    monkeypatch.setenv("CHATGATE_RPM_LIMIT", "7")
    monkeypatch.setenv("CHATGATE_TPM_LIMIT", "700")
    monkeypatch.setenv("CHATGATE_RATE_WINDOW_SECONDS", "2")
    settings_ = Settings()
    assert Limits.from_settings(settings_) == Limits(requests=7, tokens=700)
    rl = RateLimiter.from_settings(MemoryStore(), settings_, clock=Clock())
    assert isinstance(asyncio.run(rl.reserve("w", "gpt-4o", 1, Limits(1, 1))), Reservation)


def test_counter_keys_hold_the_window_and_cannot_collide():
    assert counter_key("ws1", "gpt-4o", 1_700_000_040) == "RL#ws1#gpt-4o#1700000040"
    assert counter_key("a#b", "c", 0) != counter_key("a", "b#c", 0)
    with pytest.raises(ValueError):
        Limits(requests=-1, tokens=0)
