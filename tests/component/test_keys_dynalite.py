"""Key last-used writes on DynamoDB semantics (dynalite): conditional, so instances racing for the same key
write it once per interval, and a deleted key is never recreated by a late write."""

from __future__ import annotations

import asyncio

from chatgate.gateway.auth import Authenticator, new_key
from chatgate.stores.keys_dynamodb import DynamoDBKeyStore
from tests.support import dynalite as dl


async def test_eight_instances_record_a_keys_use_once_per_interval(endpoint: str, table: str) -> None:
    key, key_id, key_hash = new_key()
    dl.put_key(dl.client(endpoint), table, key_id=key_id, key_hash=key_hash, workspace_id="acme", name="ci")
    now = [1_700_000_000.0]
    stores = [DynamoDBKeyStore(dl.client(endpoint), table) for _ in range(8)]
    instances = [
        Authenticator(store, cache_seconds=0, last_used_interval=300, wall_clock=lambda: now[0])
        for store in stores
    ]
    results: list[bool] = []
    for store in stores:  # record what each conditional write answered
        original = store.touch

        async def touch(key_id: str, at: int, *, older_than: int, original=original) -> bool:
            written = await original(key_id, at, older_than=older_than)
            results.append(written)
            return written

        store.touch = touch  # type: ignore[method-assign]

    async def serve(auth: Authenticator) -> None:  # authenticate, then settle: record the use when due
        write = auth.record_use(await auth.authenticate(f"Bearer {key}"))
        if write is not None:
            await write

    for _ in range(3):  # every instance serves three requests at the same moment
        await asyncio.gather(*(serve(auth) for auth in instances))
    assert results.count(True) == 1  # one write landed; the racing ones were refused by the condition
    assert len(results) <= 8  # and each instance tried at most once
    assert (await stores[0].get(key_id)).last_used_at == 1_700_000_000  # type: ignore[union-attr]

    now[0] += 300
    await asyncio.gather(*(serve(auth) for auth in instances))
    assert results.count(True) == 2
    assert (await stores[0].get(key_id)).last_used_at == 1_700_000_300  # type: ignore[union-attr]


async def test_a_late_write_never_recreates_a_deleted_key(endpoint: str, table: str) -> None:
    store = DynamoDBKeyStore(dl.client(endpoint), table)
    assert await store.touch("0123456789abcdef", 1_700_000_000, older_than=1_699_999_701) is False
    assert await store.get("0123456789abcdef") is None
