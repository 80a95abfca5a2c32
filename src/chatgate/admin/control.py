"""The control plane's records and the port its store implements (stores/control_dynamodb.py).

What a workspace *is* lives here: the workspace itself, its keys (as hashes), its per-model limits, the
admin keys and the audit log. One DynamoDB global table holds them for every region's stack; what happens in
a region (counters, usage records, stored responses, Azure keys) stays in that region's own tables and
secrets. Every change is written together with its audit entry, in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Literal, Protocol, TypeVar

from chatgate.gateway.auth import ApiKey
from chatgate.limits.ratelimit import Limits


@dataclass(frozen=True, slots=True)
class Workspace:
    """A workspace (an OpenAI "project"). Archived: its keys stop working and it cannot change."""

    workspace_id: str
    name: str
    created_at: int
    archived_at: int | None = None

    @property
    def archived(self) -> bool:
        return self.archived_at is not None


@dataclass(frozen=True, slots=True)
class AdminKey:
    """A stored admin key (its hash). `project_id` None: an organisation admin key, else the workspace a
    workspace admin key is scoped to."""

    key_id: str
    key_hash: str
    name: str
    created_at: int
    project_id: str | None = None
    last_used_at: int | None = None


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is changing something: an admin key (the admin API, the console) or the operator (the CLI, with
    AWS credentials). `project_id` is the one workspace a workspace admin key may see; None sees all."""

    kind: Literal["api_key", "cli"]
    key_id: str | None = None
    project_id: str | None = None
    request_id: str | None = None

    @property
    def organisation_admin(self) -> bool:
        return self.project_id is None

    def sees(self, workspace_id: str) -> bool:
        return self.project_id is None or self.project_id == workspace_id

    def to_audit(self) -> dict[str, Any]:
        """The audit log's `actor` object (OpenAI's AuditLogActor)."""
        if self.kind == "api_key":
            return {"type": "api_key", "api_key": {"id": self.key_id, "type": "user"}}
        return {"type": "session", "session": {"user": {"id": "chatgate-cli"}}}


CLI = Actor("cli")


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who (actor), what (type and details, OpenAI's event types), when, on which workspace.
    The id (`audit_log-<milliseconds>-<random>`) sorts by time: it is also the entry's sort key."""

    entry_id: str
    type: str
    effective_at: int
    actor: dict[str, Any]
    request_id: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a listing, and whether more follow."""

    items: list[T]
    has_more: bool


class ControlStore(Protocol):
    """Where the control plane lives. Writes take the audit entry and store both, or neither."""

    async def get_workspace(self, workspace_id: str) -> Workspace | None: ...

    async def list_workspaces(
        self, *, after: str | None, limit: int, include_archived: bool
    ) -> Page[Workspace]: ...

    async def create_workspace(self, workspace: Workspace, audit: AuditEntry) -> bool:
        """False if a workspace with that id exists."""
        ...

    async def rename_workspace(self, workspace_id: str, name: str, audit: AuditEntry) -> bool:
        """False unless the workspace exists and is not archived."""
        ...

    async def archive_workspace(self, workspace_id: str, at: int, audit: AuditEntry) -> bool:
        """False unless the workspace exists and is not archived."""
        ...

    async def create_key(self, key: ApiKey, audit: AuditEntry) -> bool:
        """False unless the key's workspace exists and is not archived."""
        ...

    async def get_key(self, key_id: str) -> ApiKey | None: ...

    async def list_keys(self, workspace_id: str) -> list[ApiKey]: ...

    async def revoke_key(self, key_id: str, at: int, audit: AuditEntry) -> bool:
        """False if there is no such key or it is revoked already (the first revocation's time stays)."""
        ...

    async def get_limits(self, workspace_id: str) -> dict[str, Limits]: ...

    async def set_limits(self, workspace_id: str, model: str, limits: Limits, audit: AuditEntry) -> None: ...

    async def delete_limits(self, workspace_id: str, model: str, audit: AuditEntry) -> bool:
        """False if the workspace had no override for that model."""
        ...

    async def create_admin_key(self, key: AdminKey, audit: AuditEntry) -> None: ...

    async def get_admin_key(self, key_id: str) -> AdminKey | None: ...

    async def list_admin_keys(self) -> list[AdminKey]: ...

    async def touch_admin_key(self, key_id: str, now: int, *, older_than: int) -> bool:
        """Set the admin key's last_used_at to `now` if it is missing or older than `older_than`; True if
        written (never creating a deleted key)."""
        ...

    async def delete_admin_key(self, key_id: str, audit: AuditEntry) -> bool:
        """False if there is no such admin key."""
        ...

    async def record(self, audit: AuditEntry) -> None:
        """An audit entry for a change made outside the control plane (a BYOK secret)."""
        ...

    async def list_audit(
        self, *, project_ids: frozenset[str], after: str | None, limit: int, event_types: frozenset[str]
    ) -> Page[AuditEntry]:
        """Newest first, after the entry id `after`; only those workspaces' entries (empty: every entry)
        and those types (empty: every type)."""
        ...
