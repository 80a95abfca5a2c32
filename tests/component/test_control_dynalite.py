"""The control plane's writes on DynamoDB semantics (dynalite, whose conditional writes are atomic; it has no
transactions, so the store writes each change, then its entry): racing administrators never create a
workspace twice, every change that happened has exactly one audit entry, and a change refused by its
condition has none."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from chatgate.admin import keys, workspaces
from chatgate.admin.control import Actor
from chatgate.errors import Conflict, NotFound
from chatgate.stores.aws import DYNAMODB, AwsJsonClient, Credentials, aws_http_client
from chatgate.stores.control_dynamodb import DynamoDBControlStore
from chatgate.upstream.transport import Client
from tests.support import dynalite as dl

ORG = Actor("api_key", key_id="org-admin", request_id="req_test")


@pytest.fixture
async def stores(endpoint: str) -> AsyncIterator[list[DynamoDBControlStore]]:
    """Eight stores on one fresh control table, each with its own connection pool (eight instances)."""
    table = dl.create_control_table(dl.client(endpoint), f"control-{uuid.uuid4().hex[:8]}")
    pools: list[Client] = [aws_http_client() for _ in range(8)]
    yield [
        DynamoDBControlStore(
            AwsJsonClient(
                DYNAMODB, pool, region="eu-central-1", endpoint=endpoint, credentials=Credentials("l", "l")
            ),
            table,
        )
        for pool in pools
    ]
    for pool in pools:
        await pool.aclose()


async def entries(store: DynamoDBControlStore, project: str) -> list[str]:
    page = await store.list_audit(
        project_ids=frozenset({project}), after=None, limit=100, event_types=frozenset()
    )
    return [entry.type for entry in page.items]


async def test_racing_creations_of_one_project_make_one(stores: list[DynamoDBControlStore]) -> None:
    async def create(store: DynamoDBControlStore) -> bool:
        try:
            await workspaces.create_workspace(store, ORG, "Acme", "acme")
        except Conflict:
            return False
        return True

    outcomes = await asyncio.gather(*(create(store) for store in stores))
    assert outcomes.count(True) == 1
    assert await entries(stores[0], "acme") == ["project.created"]  # the losers left no entry


async def test_racing_key_creations_and_revocations_are_each_audited_once(
    stores: list[DynamoDBControlStore],
) -> None:
    await workspaces.create_workspace(stores[0], ORG, "Acme", "acme")
    created = await asyncio.gather(
        *(keys.create_key(store, ORG, "acme", f"k{i}") for i, store in enumerate(stores))
    )
    assert len({record.key_id for _, record in created}) == 8
    listed = await keys.list_keys(stores[0], ORG, "acme")
    assert sorted(key.key_id for key in listed) == sorted(record.key_id for _, record in created)

    victim = created[0][1].key_id
    results = await asyncio.gather(
        *(keys.revoke_key(store, ORG, "acme", victim) for store in stores), return_exceptions=True
    )
    revoked = [result for result in results if not isinstance(result, BaseException)]
    assert len(revoked) == 1  # one revocation happened; the others found it done: 404, as in the API
    assert all(isinstance(result, NotFound) for result in results if isinstance(result, BaseException))
    assert (await stores[0].get_key(victim)).revoked_at == revoked[0].revoked_at  # type: ignore[union-attr]
    log = await entries(stores[0], "acme")
    assert log.count("api_key.created") == 8 and log.count("api_key.deleted") == 1
    assert log[-1] == "project.created"
