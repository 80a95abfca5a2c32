"""Response ownership records on DynamoDB semantics (dynalite): one item per response id, never taken over
by another workspace, expiring with Azure's retention, and marked when deleted."""

from __future__ import annotations

import pytest

from chatgate.errors import NotFound, ServiceUnavailable
from chatgate.gateway.ownership import ResponseOwner, ResponseOwnership
from chatgate.stores.ownership_dynamodb import DynamoDBOwnershipStore, owner_key
from tests.support import dynalite as dl

NOW = 1_700_000_000.0


async def test_record_check_and_delete(endpoint: str, table: str) -> None:
    client = dl.client(endpoint)
    store = DynamoDBOwnershipStore(client, table, clock=lambda: NOW)
    owners = ResponseOwnership(store, clock=lambda: NOW)
    await owners.record("acme", "eu", "resp_a")
    item = client.get_item(TableName=table, Key=owner_key("resp_a"))["Item"]
    assert item["workspace_id"] == {"S": "acme"} and item["region"] == {"S": "eu"}
    assert item["ttl"] == {"N": str(int(NOW) + 30 * 24 * 3600)}
    await owners.check("acme", "eu", "resp_a")

    await owners.record("intruder", "eu", "resp_a")  # refused by the condition, silently
    assert await store.get("resp_a") == ResponseOwner("acme", "eu")
    with pytest.raises(NotFound):
        await owners.check("intruder", "eu", "resp_a")

    await owners.deleted("resp_a")
    assert await store.get("resp_a") == ResponseOwner("acme", "eu", deleted=True)
    with pytest.raises(NotFound):
        await owners.check("acme", "eu", "resp_a")
    await owners.deleted("resp_never")  # nothing to mark: no item is created
    assert "Item" not in client.get_item(TableName=table, Key=owner_key("resp_never"))


async def test_expired_records_are_ignored_before_dynamodb_removes_them(endpoint: str, table: str) -> None:
    now = [NOW]
    store = DynamoDBOwnershipStore(dl.client(endpoint), table, clock=lambda: now[0])
    await ResponseOwnership(store, retention_seconds=60, clock=lambda: now[0]).record("acme", "eu", "resp_b")
    assert await store.get("resp_b") is not None
    now[0] += 61
    assert await store.get("resp_b") is None


async def test_an_id_too_long_for_a_key_was_never_issued(endpoint: str, table: str) -> None:
    """DynamoDB refuses a partition key over 2,048 bytes (a ValidationException, which would be a 503):
    such an id is answered as unknown without a read."""
    client = dl.client(endpoint)
    longest = "r" * (2048 - len("RESP#"))
    with pytest.raises(client.exceptions.ClientError):
        client.get_item(TableName=table, Key=owner_key(longest + "r"))  # what asking would do
    store = DynamoDBOwnershipStore(client, table, clock=lambda: NOW)
    owners = ResponseOwnership(store, clock=lambda: NOW)
    await owners.record("acme", "eu", longest)  # the longest id a key can hold is stored as any other
    await owners.check("acme", "eu", longest)
    for too_long in (longest + "r", "é" * 1022):  # bytes count, not characters
        assert await store.get(too_long) is None
        with pytest.raises(NotFound):
            await owners.check("acme", "eu", too_long)
        await owners.deleted(too_long)  # nothing to mark, nothing raised


async def test_dynamodb_failure_is_503(endpoint: str) -> None:
    store = DynamoDBOwnershipStore(dl.client(endpoint), "no-such-table")
    with pytest.raises(ServiceUnavailable):
        await store.get("resp_c")
    with pytest.raises(ServiceUnavailable):
        await store.put("resp_c", ResponseOwner("acme", "eu"), 1)
