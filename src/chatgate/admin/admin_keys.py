"""Admin keys: who may use the admin API. Create, list, read, delete (audited), and authenticate.

Two kinds: an organisation admin key (`project_id` None; the first is made by `chatgate admin-keys create`)
sees every workspace; a workspace admin key sees its own workspace only (any other id is a 404, as if it did
not exist), and may create admin keys for that workspace only. An admin key looks like
`cga_<key id>_<secret>`, is shown once and stored as its SHA-256 (like workspace keys, chatgate.auth). It
never authenticates a model call (it is not a `cg_` key) and a model key never authenticates an admin call.
A deleted key, or one whose workspace is archived, stops working within `CHATGATE_KEY_CACHE_SECONDS`.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from chatgate.admin import audit
from chatgate.admin.control import Actor, AdminKey, ControlStore
from chatgate.admin.workspaces import changeable, check_name
from chatgate.auth import KEY_PREFIX, bearer_token, hash_key, new_key, parse_key_id
from chatgate.errors import InvalidApiKey, NotFound

logger = logging.getLogger(__name__)

ADMIN_KEY_PREFIX = "cga"
_CACHE_MAX_ENTRIES = 1_000


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


class AdminAuthenticator:
    """Admin keys -> Actor, with a short per-instance cache (deletion bound: `cache_seconds`)."""

    def __init__(
        self,
        store: ControlStore,
        *,
        cache_seconds: float = 30.0,
        last_used_interval: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, AdminKey | None, bool]] = {}
        self._wall_clock = wall_clock
        self._last_used_interval = last_used_interval
        self._recorded_use: dict[str, float] = {}  # key id -> latest use known to be recorded

    async def authenticate(self, authorization: str | None, request_id: str | None = None) -> Actor:
        key = bearer_token(authorization)
        key_id = parse_key_id(key, ADMIN_KEY_PREFIX)
        if key_id is None:
            if key.startswith(f"{KEY_PREFIX}_"):
                raise InvalidApiKey(
                    "This is a model API key: the admin API needs an admin key (`chatgate admin-keys "
                    "create`, or POST /v1/organization/admin_api_keys)."
                )
            raise InvalidApiKey("Incorrect admin API key provided.")
        record, archived = await self._lookup(key_id)
        if record is None or not hmac.compare_digest(record.key_hash, hash_key(key)):
            raise InvalidApiKey("Incorrect admin API key provided.")
        if archived:
            raise InvalidApiKey("The admin API key provided belongs to an archived project.")
        await self._record_use(record)
        return Actor("api_key", key_id=record.key_id, project_id=record.project_id, request_id=request_id)

    async def _record_use(self, key: AdminKey) -> None:
        """Write the key's last use, at most once per interval per key and instance, before the call is
        answered (admin calls are few; nothing runs after a Lambda response). Best effort."""
        now = self._wall_clock()
        known = max(self._recorded_use.get(key.key_id, 0.0), float(key.last_used_at or 0))
        if now - known < self._last_used_interval:
            return
        self._recorded_use[key.key_id] = now
        if len(self._recorded_use) > _CACHE_MAX_ENTRIES:
            self._recorded_use.clear()
        try:
            await self._store.touch_admin_key(key.key_id, int(now))
        except Exception as exc:  # the call itself is authorised: a failed note of it must not refuse it
            logger.warning(
                "recording the last use of admin key %s failed: %s", key.key_id, type(exc).__name__
            )

    async def _lookup(self, key_id: str) -> tuple[AdminKey | None, bool]:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1], cached[2]
        record = await self._store.get_admin_key(key_id)
        archived = False
        if record is not None and record.project_id is not None:
            workspace = await self._store.get_workspace(record.project_id)
            archived = workspace is None or workspace.archived
        if len(self._cache) >= _CACHE_MAX_ENTRIES:
            self._cache.clear()
        self._cache[key_id] = (now, record, archived)
        return record, archived
