"""Admin keys: who may use the admin API. Create, list, read, delete (audited), and authenticate.

Two kinds: an organisation admin key (`project_id` None; the first is made by `chatgate admin-keys create`)
sees every workspace; a workspace admin key sees its own workspace only (any other id is a 404, as if it did
not exist), and may create admin keys for that workspace only. An admin key looks like
`cga_<key id>_<secret>`, is shown once and stored as its SHA-256 (like workspace keys,
chatgate.gateway.auth). It
never authenticates a model call (it is not a `cg_` key) and a model key never authenticates an admin call.
A deleted key, or one whose workspace is archived, stops working within `CHATGATE_KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import time
from typing import Any

from chatgate.admin import audit
from chatgate.admin.control import Actor, AdminKey, ControlStore
from chatgate.admin.workspaces import changeable, check_name
from chatgate.errors import InvalidApiKey, NotFound
from chatgate.gateway.auth import ApiKey, Authenticator, bearer_token, new_key, parse_key_id

ADMIN_KEY_PREFIX = "cga"


def new_admin_key() -> tuple[str, str, str]:
    """(key, key_id, key_hash): the key is shown once and never stored."""
    return new_key(ADMIN_KEY_PREFIX)


def redacted(key_id: str) -> str:
    """How a key is shown after creation: its prefix and id, never its secret."""
    return f"{ADMIN_KEY_PREFIX}_{key_id}_..."


def _not_found(key_id: str) -> NotFound:
    return NotFound(f"No admin API key found with id '{key_id}'.", param="key_id", code="not_found")


async def create_admin_key(
    store: ControlStore, actor: Actor, name: str, project_id: str | None = None
) -> tuple[str, AdminKey]:
    """A new admin key: (the key, shown this once; its record). A workspace admin's keys are scoped to its
    own workspace whatever it asks; naming another workspace is a 404."""
    name = check_name(name)
    if actor.project_id is not None:
        project_id = project_id if project_id is not None else actor.project_id
    if project_id is not None:
        await changeable(store, actor, project_id)
    key, key_id, key_hash = new_admin_key()
    record = AdminKey(key_id, key_hash, name, int(time.time()), project_id)
    details = {"id": key_id, "data": {"name": name, "project_id": project_id, "scopes": ["api.management"]}}
    change = audit.entry(actor, "api_key.created", project=project_id, details=details)
    await store.create_admin_key(record, change)
    return key, record


async def list_admin_keys(store: ControlStore, actor: Actor) -> list[AdminKey]:
    keys = [key for key in await store.list_admin_keys() if actor.project_id in (None, key.project_id)]
    return sorted(keys, key=lambda key: (key.created_at, key.key_id))


async def get_admin_key(store: ControlStore, actor: Actor, key_id: str) -> AdminKey:
    key = await store.get_admin_key(key_id)
    if key is None or actor.project_id not in (None, key.project_id):
        raise _not_found(key_id)
    return key


async def delete_admin_key(store: ControlStore, actor: Actor, key_id: str) -> AdminKey:
    key = await get_admin_key(store, actor, key_id)
    change = audit.entry(actor, "api_key.deleted", project=key.project_id, details={"id": key_id})
    if not await store.delete_admin_key(key_id, change):
        raise _not_found(key_id)
    return key


class _AdminKeyStore:
    """chatgate.gateway.auth's KeyStore over the control plane's admin keys, so admin keys are looked up,
    cached
    and their use recorded by the same Authenticator as workspace keys. A workspace admin key reads as a
    key of its workspace, archived with it (or when the workspace is gone)."""

    def __init__(self, store: ControlStore) -> None:
        self._store = store

    async def get(self, key_id: str) -> ApiKey | None:
        key = await self._store.get_admin_key(key_id)
        if key is None:
            return None
        archived_at = None
        if key.project_id is not None:
            workspace = await self._store.get_workspace(key.project_id)
            archived_at = key.created_at if workspace is None else workspace.archived_at
        return ApiKey(
            key.key_id,
            key.project_id or "",
            key.key_hash,
            key.name,
            key.created_at,
            last_used_at=key.last_used_at,
            workspace_archived_at=archived_at,
        )

    async def touch(self, key_id: str, now: int, *, older_than: int) -> bool:
        return await self._store.touch_admin_key(key_id, now, older_than=older_than)


class AdminAuthenticator:
    """Admin keys -> Actor: chatgate.gateway.auth's Authenticator on `cga` keys (the same per-instance cache,
    so a
    deleted key stops within `cache_seconds`), and the key's last use recorded before the call is answered
    (admin calls are few, and nothing runs after a Lambda response)."""

    def __init__(self, store: ControlStore, **options: Any) -> None:
        self._keys = Authenticator(_AdminKeyStore(store), kind=ADMIN_KEY_PREFIX, **options)

    async def authenticate(self, authorization: str | None, request_id: str | None = None) -> Actor:
        if parse_key_id(bearer_token(authorization)) is not None:
            raise InvalidApiKey(
                "This is a model API key: the admin API needs an admin key (`chatgate admin-keys "
                "create`, or POST /v1/organization/admin_api_keys)."
            )
        caller = await self._keys.authenticate(authorization)
        write = self._keys.record_use(caller)
        if write is not None:
            await write
        return Actor(
            "api_key", key_id=caller.key_id, project_id=caller.workspace_id or None, request_id=request_id
        )
