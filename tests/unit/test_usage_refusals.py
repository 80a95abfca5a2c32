"""Rate-limit refusals in the usage ledger: every refusal is counted, at most one write per workspace,
model and day per instance per interval, the first one before its 429 is sent, the rest carried by the next
write that is due or by `drain` at shutdown; a failed write is retried, one that may have been applied is
not written twice."""

from __future__ import annotations

from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import EMBEDDINGS, UsageLedger
from chatgate.stores.usage_dynamodb import UsageStoreError
from tests.fakes import MemoryUsage

DAY = "2026-03-01"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Counting(MemoryUsage):
    """MemoryUsage that remembers each refusal write's count, and can fail the next ones."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[int] = []
        self.failures: list[Exception] = []

    async def add_refusals(
        self, workspace_id: str, day: str, model: str, count: int, *, marker: str, api: str
    ) -> bool:
        if self.failures:
            raise self.failures.pop(0)
        self.writes.append(count)
        return await super().add_refusals(workspace_id, day, model, count, marker=marker, api=api)

    def refused(self, model: str = "gpt-4o") -> int:
        record = self.records.get(("acme", DAY, model))
        return record.rate_limited if record else 0


def ledger(store: Counting, clock: Clock) -> UsageLedger:
    return UsageLedger(store, refusals=store, refusals_interval=1.0, clock=clock)


async def test_a_flood_is_one_write_per_interval_and_every_refusal_is_counted() -> None:
    store, clock = Counting(), Clock()
    usage = ledger(store, clock)
    await usage.refused("acme", DAY, "gpt-4o")
    assert store.refused() == 1  # the first refusal is in the ledger when `refused` returns (before the 429)
    for _ in range(99):
        clock.now += 0.005
        await usage.refused("acme", DAY, "gpt-4o")
    assert store.writes == [1]  # 99 more within the second: carried, not written
    clock.now = 101.0
    await usage.refused("acme", DAY, "gpt-4o")
    assert store.writes == [1, 100] and store.refused() == 101
    await usage.refused("acme", DAY, "gpt-4o")
    await usage.drain()  # at shutdown: what is carried is written
    assert store.writes == [1, 100, 1] and store.refused() == 102


async def test_each_workspace_model_and_api_has_its_own_interval() -> None:
    store, clock = Counting(), Clock()
    usage = ledger(store, clock)
    await usage.refused("acme", DAY, "gpt-4o")
    await usage.refused("acme", DAY, "text-embedding-3-small", api=EMBEDDINGS)
    await usage.refused("globex", DAY, "gpt-4o")
    assert store.writes == [1, 1, 1]
    assert store.records[("acme", DAY, "text-embedding-3-small")].api == EMBEDDINGS


async def test_a_request_settled_later_writes_the_refusals_carried() -> None:
    store, clock = Counting(), Clock()
    usage = ledger(store, clock)
    await usage.refused("acme", DAY, "gpt-4o")
    await usage.refused("acme", DAY, "gpt-4o")
    clock.now += 0.5
    await usage.record("acme", DAY, "gpt-4o-mini", TokenUsage(1, 1, "azure"), marker="m1")
    assert store.refused() == 1  # not due yet
    clock.now += 0.5
    await usage.record("acme", DAY, "gpt-4o-mini", TokenUsage(1, 1, "azure"), marker="m2")
    assert store.refused() == 2 and store.writes == [1, 1]


async def test_a_failed_write_is_retried_and_one_that_may_have_applied_is_not_doubled() -> None:
    store, clock = Counting(), Clock()
    usage = ledger(store, clock)
    store.failures = [UsageStoreError("DynamoDB UpdateItem failed: ThrottlingException")]
    await usage.refused("acme", DAY, "gpt-4o")  # never raises
    assert store.refused() == 0
    clock.now += 1.0
    await usage.refused("acme", DAY, "gpt-4o")
    assert store.refused() == 2  # the failed one came with the next
    clock.now += 1.0
    store.failures = [UsageStoreError("DynamoDB UpdateItem outcome unknown: ReadTimeout", maybe_applied=True)]
    await usage.refused("acme", DAY, "gpt-4o")
    await usage.drain()
    assert store.refused() == 2  # dropped rather than risk counting it twice (logged)


async def test_the_map_of_keys_stays_small() -> None:
    store, clock = Counting(), Clock()
    usage = ledger(store, clock)
    for i in range(50):
        await usage.refused(f"ws{i}", DAY, "gpt-4o")
    clock.now += 1.0
    await usage.refused("acme", DAY, "gpt-4o")
    assert len(usage._refusals) == 1
