"""The request path's own DynamoDB client (stores/aws.py on httpx, no boto3) on dynalite: the limiter stays
exact under concurrency, admission is one HTTP request, usage adds up, and failures are 503s."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from chatgate.errors import RateLimitExceeded, ServiceUnavailable
from chatgate.gateway.auth import new_key
from chatgate.limits.ratelimit import Counts, Limits, RateLimiter, Reservation
from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import UsageLedger
from chatgate.stores.aws import DYNAMODB, AwsJsonClient, Credentials, aws_http_client
from chatgate.stores.keys_dynamodb import DynamoDBKeyStore
from chatgate.stores.markers import Acknowledged
from chatgate.stores.ratelimit_dynamodb import DynamoDBCounterStore
from chatgate.stores.usage_dynamodb import DynamoDBUsageStore, usage_key
from chatgate.upstream.transport import Client, Transport
from tests.support import dynalite as dl

T0 = 1_700_000_040.0


@pytest.fixture
def rl_table(endpoint: str) -> str:
    return dl.create_rate_limit_table(dl.client(endpoint), f"rl-{uuid.uuid4().hex[:8]}")


class Watched(Transport):
    """chatgate's transport, telling `sent` of each request it sends."""

    def __init__(self, sent: Callable[[httpx.Request], None]) -> None:
        super().__init__()
        self.sent = sent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.sent(request)
        return await super().handle_async_request(request)


@pytest.fixture
async def connect(endpoint: str) -> AsyncIterator[Callable[..., AwsJsonClient]]:
    """AwsJsonClients on dynalite, one connection pool each (like separate function instances);
    `sent`, if given, is called with each request as it goes out."""
    pools: list[Client] = []

    def make(url: str = endpoint, sent: Callable[[httpx.Request], None] | None = None) -> AwsJsonClient:
        http = aws_http_client() if sent is None else Client(Watched(sent), httpx.Timeout(5, connect=2))
        pools.append(http)
        return AwsJsonClient(
            DYNAMODB, http, region="eu-central-1", endpoint=url, credentials=Credentials("local", "local")
        )

    yield make
    for pool in pools:
        await pool.aclose()


async def test_40_simultaneous_reservations_from_4_instances_admit_exactly_5(
    connect: Callable[..., AwsJsonClient], rl_table: str
) -> None:
    limiters = [
        RateLimiter(DynamoDBCounterStore(connect(), rl_table), window_seconds=60, clock=lambda: T0)
        for _ in range(4)
    ]

    async def attempt(i: int) -> Reservation | RateLimitExceeded:
        try:
            return await limiters[i % 4].reserve("acme", "gpt-4o", 20, Limits(requests=5, tokens=10**6))
        except RateLimitExceeded as exc:
            return exc

    results = await asyncio.gather(*(attempt(i) for i in range(40)))
    admitted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, RateLimitExceeded)]
    assert len(admitted) == 5 and len(refused) == 35
    remaining = sorted(int(r.headers()["x-ratelimit-remaining-requests"]) for r in admitted)
    assert remaining == [0, 1, 2, 3, 4]  # each admission saw a distinct count
    assert {r.error_type for r in refused} == {"requests"}


async def test_admission_is_one_request_and_a_refusal_reads_once_at_most(
    connect: Callable[..., AwsJsonClient], rl_table: str
) -> None:
    targets: list[str] = []

    def record(request: httpx.Request) -> None:
        targets.append(request.headers["x-amz-target"].split(".")[-1])

    limiter = RateLimiter(
        DynamoDBCounterStore(connect(sent=record), rl_table), window_seconds=60, clock=lambda: T0
    )
    reservation = await limiter.reserve("acme", "gpt-4o", 300, Limits(requests=10, tokens=500))
    assert targets == ["UpdateItem"]
    await limiter.reconcile(reservation, 120)
    assert targets == ["UpdateItem", "UpdateItem"]
    with pytest.raises(RateLimitExceeded) as refused:
        await limiter.reserve("acme", "gpt-4o", 400, Limits(requests=10, tokens=500))
    assert refused.value.error_type == "tokens" and "Used 120" in refused.value.message
    assert targets[2] == "UpdateItem" and len(targets) <= 4  # dynalite returns no ALL_OLD: one GetItem


async def test_concurrent_usage_adds_from_four_instances_lose_nothing(
    connect: Callable[..., AwsJsonClient], endpoint: str, table: str
) -> None:
    ledgers = [UsageLedger(DynamoDBUsageStore(connect(), table)) for _ in range(4)]
    rng = random.Random(11)
    usages = [TokenUsage(rng.randint(1, 5000), rng.randint(0, 2000), "azure") for _ in range(120)]
    await asyncio.gather(
        *(
            ledgers[i % 4].record("acme", "2025-03-01", "gpt-4o", u, marker=f"m{i}")
            for i, u in enumerate(usages)
        )
    )
    for ledger in ledgers:
        await ledger.drain()
    [record] = await DynamoDBUsageStore(dl.client(endpoint), table).records(
        "acme", "2025-03-01", "2025-03-01"
    )
    assert record.requests == 120
    assert record.prompt_tokens == sum(u.prompt_tokens for u in usages)
    assert record.completion_tokens == sum(u.completion_tokens for u in usages)


async def test_keys_are_read_and_touched_conditionally(
    connect: Callable[..., AwsJsonClient], endpoint: str, table: str
) -> None:
    _key, key_id, key_hash = new_key()
    dl.put_key(dl.client(endpoint), table, key_id=key_id, key_hash=key_hash, workspace_id="acme", name="ci")
    store = DynamoDBKeyStore(connect(), table)
    found = await store.get(key_id)
    assert found is not None and found.workspace_id == "acme" and found.key_hash == key_hash
    assert await store.get("0123456789abcdef") is None
    writes = await asyncio.gather(
        *(store.touch(key_id, 1_700_000_000, older_than=1_699_999_700) for _ in range(8))
    )
    assert writes.count(True) == 1
    assert await store.touch("0123456789abcdef", 1_700_000_000, older_than=1) is False  # never recreated


async def test_a_missing_table_or_an_unreachable_store_is_a_503(
    connect: Callable[..., AwsJsonClient],
) -> None:
    limits = Limits(requests=10, tokens=1000)
    for client in (connect(), connect("http://127.0.0.1:9")):
        limiter = RateLimiter(DynamoDBCounterStore(client, "no-such-table"), clock=lambda: T0)
        with pytest.raises(ServiceUnavailable) as info:
            await limiter.reserve("acme", "gpt-4o", 10, limits)
        assert info.value.status_code == 503
        with pytest.raises(ServiceUnavailable):
            await DynamoDBKeyStore(client, "no-such-table").get("0123456789abcdef")


async def test_every_settlement_write_sent_twice_applies_once_and_known_markers_are_cleared(
    connect: Callable[..., AwsJsonClient], endpoint: str, table: str, rl_table: str
) -> None:
    """What a retry after a lost answer, or `chatgate ledger replay`, does: the same write again."""
    counters = DynamoDBCounterStore(connect(), rl_table)
    limits = dict(max_requests=10, max_tokens=1000, expires_at=int(T0) + 3600)
    first = await counters.try_add("RL#k", requests=1, tokens=300, marker="aa", **limits)
    again = await counters.try_add("RL#k", requests=1, tokens=300, marker="aa", **limits)
    assert first.admitted and again.admitted and again.counts == first.counts == Counts(1, 300)
    assert await counters.settle("RL#k", marker="aa", requests=0, tokens=-200)
    assert not await counters.settle("RL#k", marker="aa", requests=0, tokens=-200)
    assert await counters.add_tokens("RL#later", 50, expires_at=int(T0) + 3600, marker="aa")
    assert not await counters.add_tokens("RL#later", 50, expires_at=int(T0) + 3600, marker="aa")
    assert await counters.read("RL#k") == Counts(1, 100) and await counters.read("RL#later") == Counts(0, 50)
    items = dl.client(endpoint)
    assert "p_aa" not in items.get_item(TableName=rl_table, Key={"pk": {"S": "RL#k"}})["Item"]

    usage = DynamoDBUsageStore(connect(), table)
    usage._acknowledged = Acknowledged(hold_seconds=0)  # removable as soon as known applied
    assert await usage.add("acme", "2025-03-01", "gpt-4o", TokenUsage(10, 5, "azure"), marker="u1")
    assert not await usage.add("acme", "2025-03-01", "gpt-4o", TokenUsage(10, 5, "azure"), marker="u1")
    assert await usage.add("acme", "2025-03-01", "gpt-4o", TokenUsage(1, 1, "azure"), marker="u2")
    [record] = await DynamoDBUsageStore(items, table).records("acme", "2025-03-01", "2025-03-01")
    assert (record.requests, record.prompt_tokens, record.completion_tokens) == (2, 11, 6)
    item = items.get_item(TableName=table, Key=usage_key("acme", "2025-03-01", "gpt-4o"))["Item"]
    assert "m_u1" not in item and "m_u2" in item  # u1's marker rode out on u2's write


async def test_a_busy_usage_record_keeps_a_bounded_number_of_markers(
    connect: Callable[..., AwsJsonClient], endpoint: str, table: str
) -> None:
    """DynamoDB's 400 KB item limit: markers known applied leave with later writes, so a record written
    by every request of its day holds a few markers, not one per request."""
    usage = DynamoDBUsageStore(connect(), table)
    usage._acknowledged = Acknowledged(hold_seconds=0)
    for i in range(120):
        assert await usage.add("acme", "2025-03-02", "gpt-4o", TokenUsage(1, 1, "azure"), marker=f"b{i}")
    item = dl.client(endpoint).get_item(TableName=table, Key=usage_key("acme", "2025-03-02", "gpt-4o"))[
        "Item"
    ]
    assert int(item["requests"]["N"]) == 120
    assert [name for name in item if name.startswith("m_")] == ["m_b119"]  # the last write's, only
