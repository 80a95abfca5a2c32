"""Who owns a stored response: the Responses API keeps conversation state on the (shared) Azure resource,
so chatgate records, for each response it created with `store` not false, the workspace and region it
belongs to. `previous_response_id`, GET, DELETE and input_items are allowed only on ids the calling
workspace owns in that region; anything else is a 404 `not_found` before anything is sent to Azure -
indistinguishable from an id that never existed, so ids of other workspaces cannot even be probed.

Records expire with Azure's own 30-day retention of stored responses (DynamoDB TTL). A deleted response
keeps its record, marked deleted, until then: later calls on it are answered here, not by Azure.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from chatgate.errors import NotFound

# Azure OpenAI keeps stored responses for 30 days.
RETENTION_SECONDS = 30 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ResponseOwner:
    """The stored record of one response id."""

    workspace_id: str
    region: str
    deleted: bool = False
    # The name of the pool's resource that stores it (upstream pools); None for records made before pools,
    # which live on the pool's first resource by priority.
    resource: str | None = None


class OwnershipStore(Protocol):
    """Where ownership records live (DynamoDB in production: stores/ownership_dynamodb.py)."""

    async def put(self, response_id: str, owner: ResponseOwner, expires_at: int) -> None:
        """Record the owner of a new response id (an id already owned by someone else is kept as it is)."""
        ...

    async def get(self, response_id: str) -> ResponseOwner | None:
        """The owner of a response id, or None when it was never recorded (or has expired)."""
        ...

    async def mark_deleted(self, response_id: str) -> None:
        """Remember that the response was deleted."""
        ...


def response_not_found(response_id: str) -> NotFound:
    """What a client sees for an id it may not use: unknown, expired, deleted, or another workspace's."""
    return NotFound(f"Response with id '{response_id}' not found.", param=None, code="not_found")


def previous_response_not_found(response_id: str) -> NotFound:
    """The same 404 for a `previous_response_id` the caller may not continue, naming that field."""
    return NotFound(
        f"Previous response with id '{response_id}' not found.",
        param="previous_response_id",
        code="not_found",
    )


class ResponseOwnership:
    """Records and checks which workspace (and region) owns each stored response."""

    def __init__(
        self,
        store: OwnershipStore,
        *,
        retention_seconds: int = RETENTION_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._retention = retention_seconds
        self._clock = clock

    async def record(
        self, workspace_id: str, region: str, response_id: str, resource: str | None = None
    ) -> None:
        expires_at = int(self._clock()) + self._retention
        await self._store.put(response_id, ResponseOwner(workspace_id, region, resource=resource), expires_at)

    async def check(self, workspace_id: str, region: str, response_id: str) -> ResponseOwner:
        """The record, or the 404 unless the workspace owns the (not deleted) response in the region."""
        owner = await self._store.get(response_id)
        if owner is None or owner.deleted or (owner.workspace_id, owner.region) != (workspace_id, region):
            raise response_not_found(response_id)
        return owner

    async def deleted(self, response_id: str) -> None:
        await self._store.mark_deleted(response_id)


class MemoryOwnershipStore:
    """An OwnershipStore in a dict: unit tests and anything without AWS."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[ResponseOwner, int]] = {}

    async def put(self, response_id: str, owner: ResponseOwner, expires_at: int) -> None:
        self.records.setdefault(response_id, (owner, expires_at))

    async def get(self, response_id: str) -> ResponseOwner | None:
        found = self.records.get(response_id)
        return None if found is None else found[0]

    async def mark_deleted(self, response_id: str) -> None:
        found = self.records.get(response_id)
        if found is not None:
            owner, expires_at = found
            self.records[response_id] = (replace(owner, deleted=True), expires_at)
