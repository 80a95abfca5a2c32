"""Workspace API keys (the keys model calls use): create, list, read, revoke. Each change is audited.

OpenAI creates project keys through service accounts; chatgate's service account is the key's owner and
holds exactly that key (`svc_<key id>`): deleting the service account revokes its key. A key is shown once,
at creation, and stored as its SHA-256 (chatgate.gateway.auth). Revoked keys disappear from listings (the
record
stays, so the revocation holds in every region); a revocation takes effect within the key cache,
`CHATGATE_KEY_CACHE_SECONDS`, on every instance of every region.
"""

from __future__ import annotations

import time

from chatgate.admin import audit
from chatgate.admin.control import Actor, ControlStore
from chatgate.admin.workspaces import changeable, check_name, ensure_workspace, visible
from chatgate.errors import NotFound
from chatgate.gateway.auth import ApiKey, new_key

SERVICE_ACCOUNT_PREFIX = "svc_"


def service_account_id(key: ApiKey) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{key.key_id}"


def key_id_of_service_account(service_account: str) -> str:
    return service_account.removeprefix(SERVICE_ACCOUNT_PREFIX)


def _not_found(key_id: str) -> NotFound:
    return NotFound(f"No API key found with id '{key_id}'.", param="api_key_id", code="not_found")


async def create_key(
    store: ControlStore,
    actor: Actor,
    workspace_id: str,
    name: str,
    *,
    expires_at: int | None = None,
) -> tuple[str, ApiKey]:
    """A new key for the workspace: (the key, shown this once; its record). The organisation's operator
    (the CLI) may name a workspace that does not exist yet: it is created."""
    if actor.kind == "cli":
        workspace = await ensure_workspace(store, actor, workspace_id)
    else:
        workspace = await changeable(store, actor, workspace_id)
        name = check_name(name)
    now = int(time.time())
    key, key_id, key_hash = new_key()
    record = ApiKey(key_id, workspace_id, key_hash, name=name, created_at=now, expires_at=expires_at)
    details = {
        "id": key_id,
        "data": {"scopes": ["api.model.request"]},
        "service_account_id": service_account_id(record),
        "name": name,
        "expires_at": expires_at,
    }
    change = audit.entry(actor, "api_key.created", project=workspace, details=details)
    if not await store.create_key(record, change):
        await changeable(store, actor, workspace_id)  # says why (archived, gone)
        raise _not_found(key_id)
    return key, record


async def list_keys(store: ControlStore, actor: Actor, workspace_id: str) -> list[ApiKey]:
    """The workspace's keys that are not revoked, oldest first (expired ones included)."""
    await visible(store, actor, workspace_id)
    keys = [key for key in await store.list_keys(workspace_id) if not key.revoked]
    return sorted(keys, key=lambda key: (key.created_at, key.key_id))


async def get_key(store: ControlStore, actor: Actor, workspace_id: str, key_id: str) -> ApiKey:
    await visible(store, actor, workspace_id)
    key = await store.get_key(key_id)
    if key is None or key.workspace_id != workspace_id or key.revoked:
        raise _not_found(key_id)
    return key


async def revoke_key(store: ControlStore, actor: Actor, workspace_id: str | None, key_id: str) -> ApiKey:
    """Revoke a key (of that workspace, when named). Revoking a revoked key changes nothing."""
    key = await store.get_key(key_id)
    if key is None or (workspace_id is not None and key.workspace_id != workspace_id):
        raise _not_found(key_id)
    if not actor.sees(key.workspace_id):
        raise _not_found(key_id)
    if workspace_id is not None:
        await visible(store, actor, workspace_id)
    if key.revoked:
        if actor.kind == "cli":
            return key
        raise _not_found(key_id)
    at = int(time.time())
    details = {"id": key_id, "service_account_id": service_account_id(key)}
    change = audit.entry(actor, "api_key.deleted", project=key.workspace_id, details=details)
    if not await store.revoke_key(key_id, at, change):  # revoked meanwhile (or deleted)
        if actor.kind == "cli" and (current := await store.get_key(key_id)) is not None:
            return current
        raise _not_found(key_id)
    return ApiKey(
        key.key_id,
        key.workspace_id,
        key.key_hash,
        key.name,
        key.created_at,
        key.expires_at,
        at,
        key.last_used_at,
    )
