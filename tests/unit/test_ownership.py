"""Stored responses belong to the workspace (and region) that created them."""

from __future__ import annotations

import pytest

from chatgate.errors import NotFound
from chatgate.gateway.ownership import MemoryOwnershipStore, ResponseOwnership


async def test_only_the_owner_in_its_region_passes_the_check() -> None:
    store = MemoryOwnershipStore()
    owners = ResponseOwnership(store, clock=lambda: 1_000.0)
    await owners.record("acme", "eu", "resp_1")
    await owners.check("acme", "eu", "resp_1")
    for workspace, region, response_id in [
        ("other", "eu", "resp_1"),
        ("acme", "us", "resp_1"),
        ("acme", "eu", "resp_2"),
    ]:
        with pytest.raises(NotFound) as caught:
            await owners.check(workspace, region, response_id)
        body = caught.value.to_dict()["error"]
        assert caught.value.status_code == 404 and body["code"] == "not_found"
        assert body["message"] == f"Response with id '{response_id}' not found."
    assert store.records["resp_1"][1] == 1_000 + 30 * 24 * 3600


async def test_a_recorded_id_is_never_taken_over_and_deleted_ids_are_not_found() -> None:
    owners = ResponseOwnership(MemoryOwnershipStore())
    await owners.record("acme", "eu", "resp_1")
    await owners.record("other", "eu", "resp_1")
    await owners.check("acme", "eu", "resp_1")
    await owners.deleted("resp_1")
    with pytest.raises(NotFound):
        await owners.check("acme", "eu", "resp_1")
