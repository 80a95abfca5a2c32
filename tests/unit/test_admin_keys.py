"""Admin keys: parsing, and the bound on how long a deleted admin key (or one whose workspace was archived)
still authenticates on a warm instance: `cache_seconds`, measured on an injected clock."""

from __future__ import annotations

import pytest

from chatgate.admin.admin_keys import AdminAuthenticator, new_admin_key
from chatgate.admin.control import AdminKey, Workspace
from chatgate.errors import InvalidApiKey
from chatgate.gateway.auth import new_key, parse_key_id


class Keys:
    """The two reads AdminAuthenticator makes, from dicts, counting them."""

    def __init__(self) -> None:
        self.keys: dict[str, AdminKey] = {}
        self.workspaces: dict[str, Workspace] = {}
        self.reads = 0
        self.touched: list[tuple[str, int]] = []

    async def get_admin_key(self, key_id: str) -> AdminKey | None:
        self.reads += 1
        return self.keys.get(key_id)

    async def get_workspace(self, workspace_id: str) -> Workspace | None:
        self.reads += 1
        return self.workspaces.get(workspace_id)

    async def touch_admin_key(self, key_id: str, now: int, *, older_than: int) -> bool:
        self.touched.append((key_id, now))
        return True


def test_admin_keys_and_model_keys_parse_only_as_their_kind() -> None:
    admin, admin_id, _ = new_admin_key()
    model, model_id, _ = new_key()
    assert admin.startswith("cga_") and parse_key_id(admin, "cga") == admin_id
    assert parse_key_id(admin) is None  # never a model key
    assert parse_key_id(model) == model_id and parse_key_id(model, "cga") is None


async def test_a_deleted_admin_key_works_until_the_cache_bound_then_never() -> None:
    store, now = Keys(), [0.0]
    key, key_id, key_hash = new_admin_key()
    store.keys[key_id] = AdminKey(key_id, key_hash, "ops", 1)
    auth = AdminAuthenticator(store, cache_seconds=30, clock=lambda: now[0])  # type: ignore[arg-type]

    actor = await auth.authenticate(f"Bearer {key}", "req_1")
    assert (actor.key_id, actor.project_id, actor.request_id) == (key_id, None, "req_1")
    del store.keys[key_id]
    now[0] = 29.9
    assert (await auth.authenticate(f"Bearer {key}")).key_id == key_id  # within the bound: cached
    assert store.reads == 1
    now[0] = 30.0
    with pytest.raises(InvalidApiKey):
        await auth.authenticate(f"Bearer {key}")


async def test_a_workspace_admin_key_stops_with_its_workspace() -> None:
    store, now = Keys(), [0.0]
    key, key_id, key_hash = new_admin_key()
    store.keys[key_id] = AdminKey(key_id, key_hash, "acme ops", 1, project_id="acme")
    store.workspaces["acme"] = Workspace("acme", "Acme", 1)
    auth = AdminAuthenticator(store, cache_seconds=30, clock=lambda: now[0])  # type: ignore[arg-type]
    assert (await auth.authenticate(f"Bearer {key}")).project_id == "acme"

    store.workspaces["acme"] = Workspace("acme", "Acme", 1, archived_at=5)
    now[0] = 31.0
    with pytest.raises(InvalidApiKey, match="archived"):
        await auth.authenticate(f"Bearer {key}")


async def test_wrong_secrets_and_model_keys_are_refused() -> None:
    store = Keys()
    _key, key_id, key_hash = new_admin_key()
    store.keys[key_id] = AdminKey(key_id, key_hash, "ops", 1)
    auth = AdminAuthenticator(store)  # type: ignore[arg-type]
    with pytest.raises(InvalidApiKey, match="Incorrect"):
        await auth.authenticate(f"Bearer cga_{key_id}_not-the-secret")
    with pytest.raises(InvalidApiKey, match="model API key"):
        await auth.authenticate(f"Bearer {new_key()[0]}")
    with pytest.raises(InvalidApiKey):
        await auth.authenticate(None)


async def test_an_admin_keys_use_is_noted_once_per_interval() -> None:
    store, wall = Keys(), [1_000.0]
    key, key_id, key_hash = new_admin_key()
    store.keys[key_id] = AdminKey(key_id, key_hash, "ops", 1)
    auth = AdminAuthenticator(store, last_used_interval=300, wall_clock=lambda: wall[0])  # type: ignore[arg-type]
    for _ in range(3):
        await auth.authenticate(f"Bearer {key}")
    assert store.touched == [(key_id, 1_000)]
    wall[0] = 1_300.0
    await auth.authenticate(f"Bearer {key}")
    assert store.touched == [(key_id, 1_000), (key_id, 1_300)]
