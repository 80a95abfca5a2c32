"""The rate limiter on DynamoDB semantics (dynalite): exact under concurrency, honest in real time."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.stub import Stubber

from chatgate.errors import RateLimitExceeded, ServiceUnavailable
from chatgate.limits.ratelimit import Limits, RateLimiter, Reservation
from chatgate.stores.ratelimit_dynamodb import DynamoDBCounterStore
from tests.support import dynalite as dl

TABLE = "chatgate-ratelimits-test"
T0 = 1_700_000_040.0  # a window start for windows of 1, 2 and 60 seconds


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with dl.dynalite() as url:
        dl.create_rate_limit_table(dl.client(url), TABLE)
        yield url


@pytest.fixture
def store(endpoint: str) -> DynamoDBCounterStore:
    return DynamoDBCounterStore(dl.client(endpoint), TABLE)


@pytest.fixture
def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def threads() -> None:
    """Enough worker threads for every reservation to hit dynalite at the same time."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=48))


async def attempt(
    rl: RateLimiter, workspace: str, tokens: int, limits: Limits
) -> Reservation | RateLimitExceeded:
    try:
        return await rl.reserve(workspace, "gpt-4o", tokens, limits)
    except RateLimitExceeded as exc:
        return exc


def instances(
    endpoint: str, count: int, *, window_seconds: int, clock: Callable[[], float] = time.time
) -> list[RateLimiter]:
    """Limiters with their own client each, like separate function instances sharing the table."""
    return [
        RateLimiter(
            DynamoDBCounterStore(dl.client(endpoint), TABLE), window_seconds=window_seconds, clock=clock
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize("kind", ["requests", "tokens"])
async def test_40_simultaneous_reservations_with_a_limit_of_5_admit_exactly_5(
    endpoint, workspace, threads, kind
):
    limits = Limits(requests=5, tokens=1_000_000) if kind == "requests" else Limits(requests=1000, tokens=100)
    limiters = instances(endpoint, 4, window_seconds=60, clock=lambda: T0)
    results = await asyncio.gather(*(attempt(limiters[i % 4], workspace, 20, limits) for i in range(40)))
    admitted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, RateLimitExceeded)]
    assert len(admitted) == 5 and len(refused) == 35
    assert {r.error_type for r in refused} == {kind}
    remaining = sorted(int(r.headers()[f"x-ratelimit-remaining-{kind}"]) for r in admitted)
    step = 1 if kind == "requests" else 20
    assert remaining == [i * step for i in range(5)]  # each admission saw a distinct count


async def test_the_bursty_worst_case_is_twice_the_limit_across_a_boundary(endpoint, workspace, threads):
    now = [T0 + 59.999]
    limiters = instances(endpoint, 2, window_seconds=60, clock=lambda: now[0])
    limits = Limits(requests=5, tokens=1_000_000)
    admitted = 0
    for moment in (T0 + 59.999, T0 + 60.001):  # 2 ms apart
        now[0] = moment
        results = await asyncio.gather(*(attempt(limiters[i % 2], workspace, 1, limits) for i in range(15)))
        admitted += sum(isinstance(r, Reservation) for r in results)
    assert admitted == 2 * limits.requests
    now[0] = T0 + 119.9  # and nothing more until that window ends
    assert isinstance(await attempt(limiters[0], workspace, 1, limits), RateLimitExceeded)


async def test_steady_traffic_at_90_percent_is_never_refused(endpoint, workspace):
    """Real clock, 1 s windows, two instances: 9 requests/s of 100 tokens; limits 10 requests, 1000 tokens."""
    limiters = instances(endpoint, 2, window_seconds=1)
    limits = Limits(requests=10, tokens=1000)
    period = 1 / 9
    start = float(int(time.time()) + 1) + period / 2
    for i in range(27):  # three windows
        await asyncio.sleep(max(0.0, start + i * period - time.time()))
        reservation = await limiters[i % 2].reserve(workspace, "gpt-4o", 160, limits)  # prompt + allowance
        await limiters[i % 2].reconcile(reservation, 100)  # what was used


@pytest.mark.parametrize("kind", ["requests", "tokens"])
async def test_waiting_retry_after_then_retrying_succeeds(endpoint, workspace, kind):
    limiters = instances(endpoint, 2, window_seconds=1)
    limits = Limits(requests=3, tokens=1000) if kind == "requests" else Limits(requests=100, tokens=250)
    for i in range(100):
        result = await attempt(limiters[i % 2], workspace, 100, limits)
        if isinstance(result, RateLimitExceeded):
            break
    assert isinstance(result, RateLimitExceeded) and result.error_type == kind
    wait_ms = int(result.headers["retry-after-ms"])
    assert 0 < wait_ms <= 1010 and result.headers["retry-after"] == str(math.ceil(wait_ms / 1000))
    await asyncio.sleep(wait_ms / 1000)
    await limiters[0].reserve(workspace, "gpt-4o", 100, limits)


async def test_headers_count_down(store, workspace):
    now = [T0 + 20]
    rl = RateLimiter(store, window_seconds=60, clock=lambda: now[0])
    limits = Limits(requests=3, tokens=1000)
    headers = []
    for _ in range(3):
        headers.append((await rl.reserve(workspace, "gpt-4o", 150, limits)).headers())
        now[0] += 10
    assert [h["x-ratelimit-remaining-requests"] for h in headers] == ["2", "1", "0"]
    assert [h["x-ratelimit-remaining-tokens"] for h in headers] == ["850", "700", "550"]
    assert [h["x-ratelimit-reset-tokens"] for h in headers] == ["40s", "30s", "20s"]
    with pytest.raises(RateLimitExceeded) as info:
        await rl.reserve(workspace, "gpt-4o", 150, limits)
    assert info.value.headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.headers["retry-after"] == "11"


async def test_reconciliation_corrects_the_count_down_and_up(store, workspace):
    rl = RateLimiter(store, window_seconds=60, clock=lambda: T0)
    limits = Limits(requests=100, tokens=1000)
    first = await rl.reserve(workspace, "gpt-4o", 500, limits)
    await rl.reconcile(first, 100)
    second = await rl.reserve(workspace, "gpt-4o", 800, limits)  # fits only because 400 came back
    assert second.headers()["x-ratelimit-remaining-tokens"] == "100"
    await rl.reconcile(second, 850)
    with pytest.raises(RateLimitExceeded) as info:
        await rl.reserve(workspace, "gpt-4o", 100, limits)
    assert info.value.error_type == "tokens" and "Used 950" in info.value.message


async def test_one_item_per_window_with_the_window_in_the_key_and_a_ttl(endpoint, store, workspace):
    rl = RateLimiter(store, window_seconds=60, clock=lambda: T0 + 30)
    reservation = await rl.reserve(workspace, "gpt-4o", 42, Limits(requests=10, tokens=1000))
    assert reservation.key == f"RL#{workspace}#gpt-4o#{int(T0)}"
    item = dl.client(endpoint).get_item(TableName=TABLE, Key={"pk": {"S": reservation.key}})["Item"]
    assert item["r"] == {"N": "1"} and item["t"] == {"N": "42"}
    assert int(item["ttl"]["N"]) == int(T0) + 60 + 3600


async def test_admission_and_reconciliation_cost_one_call_each(endpoint, workspace):
    client = dl.client(endpoint)
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    rl = RateLimiter(DynamoDBCounterStore(client, TABLE), window_seconds=60, clock=lambda: T0)
    reservation = await rl.reserve(workspace, "gpt-4o", 300, Limits(requests=10, tokens=1000))
    assert calls == ["UpdateItem"]
    await rl.reconcile(reservation, 120)
    assert calls == ["UpdateItem", "UpdateItem"]


async def test_a_refusal_uses_what_dynamodb_returns_instead_of_reading(workspace):
    store = DynamoDBCounterStore(dl.client("http://127.0.0.1:9"), TABLE)
    stubber = Stubber(store._client)
    stubber.add_client_error(
        "update_item",
        service_error_code="ConditionalCheckFailedException",
        modeled_fields={"Item": {"pk": {"S": "x"}, "r": {"N": "3"}, "t": {"N": "900"}}},
    )
    rl = RateLimiter(store, window_seconds=60, clock=lambda: T0)
    with stubber, pytest.raises(RateLimitExceeded) as info:
        await rl.reserve(workspace, "gpt-4o", 200, Limits(requests=10, tokens=1000))
    stubber.assert_no_pending_responses()  # a GetItem would have failed: no response was queued for it
    assert info.value.error_type == "tokens" and "Used 900" in info.value.message


async def test_throttling_becomes_a_503_with_retry_after_and_is_logged(workspace, caplog):
    store = DynamoDBCounterStore(dl.client("http://127.0.0.1:9"), TABLE)
    stubber = Stubber(store._client)
    stubber.add_client_error("update_item", service_error_code="ProvisionedThroughputExceededException")
    rl = RateLimiter(store, window_seconds=60)
    with stubber, caplog.at_level(logging.ERROR), pytest.raises(ServiceUnavailable) as info:
        await rl.reserve(workspace, "gpt-4o", 10, Limits(requests=10, tokens=1000))
    assert info.value.status_code == 503 and info.value.headers["retry-after"] == "1"
    assert "ProvisionedThroughputExceededException" in caplog.text


async def test_unreachable_dynamodb_refuses_with_503_or_admits_when_fail_open(workspace, caplog):
    down = dl.client("http://127.0.0.1:9", attempts=1, timeout=0.5)  # nothing listens on port 9
    limits = Limits(requests=10, tokens=1000)
    with caplog.at_level(logging.WARNING), pytest.raises(ServiceUnavailable):
        await RateLimiter(DynamoDBCounterStore(down, TABLE)).reserve(workspace, "gpt-4o", 10, limits)
    assert "EndpointConnectionError" in caplog.text
    caplog.clear()
    open_rl = RateLimiter(DynamoDBCounterStore(down, TABLE), fail_open=True)
    with caplog.at_level(logging.WARNING):
        reservation = await open_rl.reserve(workspace, "gpt-4o", 10, limits)
        await open_rl.reconcile(reservation, 20)
    assert "fail-open" in caplog.text and not reservation.enforced


async def test_reconcile_against_a_failing_store_returns_the_failed_write_instead_of_raising(
    store, endpoint, workspace
):
    rl = RateLimiter(store, window_seconds=60, clock=lambda: T0)
    reservation = await rl.reserve(workspace, "gpt-4o", 300, Limits(requests=10, tokens=1000))
    broken = RateLimiter(DynamoDBCounterStore(dl.client(endpoint), "no-such-table"), clock=lambda: T0)
    (write,) = await broken.reconcile(reservation, 50)
    assert write.outcome == "failed" and "ResourceNotFoundException" in write.error
    # The write is still to do, and replaying it settles the request once.
    assert await store.settle(marker=write.marker, **write.fields) is True
    assert await store.settle(marker=write.marker, **write.fields) is False
    assert (await store.read(reservation.key)).tokens == 50
