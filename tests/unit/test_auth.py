"""Authenticate: every bad-key case is a 401, keys are cached briefly, revocation lands within the bound."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from chatgate.errors import InvalidApiKey
from chatgate.gateway.auth import Authenticator, hash_key, new_key, parse_key_id
from tests.fakes import MemoryKeyStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_new_keys_are_random_and_only_their_hash_is_kept() -> None:
    key, key_id, key_hash = new_key()
    assert parse_key_id(key) == key_id
    assert key_hash == hash_key(key) and key not in key_hash
    assert new_key()[0] != key
    assert len(key) > 50


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer   ",
        "Basic Zm9vOmJhcg==",
        "Bearer sk-openai-key",
        "Bearer cg_XYZ_abc",
        "Bearer cg__x",
    ],
)
async def test_malformed_or_missing_keys_are_401(header: str | None) -> None:
    store = MemoryKeyStore()
    with pytest.raises(InvalidApiKey) as caught:
        await Authenticator(store).authenticate(header)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert store.reads == 0  # malformed keys never reach DynamoDB


async def test_unknown_and_wrong_secret_are_401_and_the_key_is_masked() -> None:
    store = MemoryKeyStore()
    key = store.add("acme")
    wrong = key[:-4] + "AAAA"
    with pytest.raises(InvalidApiKey) as caught:
        await Authenticator(store).authenticate(f"Bearer {wrong}")
    assert wrong not in caught.value.message
    principal = await Authenticator(store).authenticate(f"Bearer {key}")
    assert principal.workspace_id == "acme"


async def test_warm_requests_use_the_cache_and_revocation_lands_within_the_bound() -> None:
    store, clock = MemoryKeyStore(), Clock()
    key = store.add("acme")
    auth = Authenticator(store, cache_seconds=30, clock=clock)
    for _ in range(5):
        await auth.authenticate(f"Bearer {key}")
    assert store.reads == 1

    key_id = parse_key_id(key)
    assert key_id
    store.keys[key_id] = replace(store.keys[key_id], revoked_at=1)
    clock.now += 29
    await auth.authenticate(f"Bearer {key}")  # still cached: inside the stated bound
    clock.now += 1.01
    with pytest.raises(InvalidApiKey, match="revoked"):
        await auth.authenticate(f"Bearer {key}")


async def test_expired_keys_are_401() -> None:
    store = MemoryKeyStore()
    key = store.add("acme", expires_at=100)
    auth = Authenticator(store, wall_clock=lambda: 101.0)
    with pytest.raises(InvalidApiKey, match="expired"):
        await auth.authenticate(f"Bearer {key}")


# --- last used: cheap, written when the request is settled ---------------------------------------------


async def serve_one(auth: Authenticator, key: str) -> None:
    """What the pipeline does with a key: authenticate, then (when the request settles) record its use."""
    caller = await auth.authenticate(f"Bearer {key}")
    write = auth.record_use(caller)
    if write is not None:
        await write


async def test_last_use_is_recorded_at_most_once_per_interval() -> None:
    store = MemoryKeyStore()
    key = store.add("acme")
    wall = Clock()
    auth = Authenticator(store, cache_seconds=30, last_used_interval=300, wall_clock=wall)
    for _ in range(100):  # 100 requests in under 5 minutes
        await serve_one(auth, key)
        wall.now += 2.9
    assert store.touches == [(parse_key_id(key), 1000)]
    wall.now = 1000 + 300
    await serve_one(auth, key)
    assert [now for _, now in store.touches] == [1000, 1300]
    [record] = store.keys.values()
    assert record.last_used_at == 1300


async def test_a_use_another_instance_recorded_recently_is_not_written_again() -> None:
    store = MemoryKeyStore()
    key = store.add("acme", last_used_at=900)  # recorded 100 s ago by another instance
    auth = Authenticator(store, last_used_interval=300, wall_clock=Clock())
    caller = await auth.authenticate(f"Bearer {key}")
    assert auth.record_use(caller) is None
    assert store.touches == []


async def test_authentication_does_not_write_and_a_failing_write_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(MemoryKeyStore):
        async def touch(self, key_id: str, now: int, *, older_than: int) -> bool:
            raise RuntimeError("DynamoDB UpdateItem failed: ThrottlingException")

    store = Failing()
    key = store.add("acme")
    auth = Authenticator(store, wall_clock=Clock())
    principal = await auth.authenticate(f"Bearer {key}")
    assert principal.workspace_id == "acme" and principal.use_to_record == 1000
    write = auth.record_use(principal)
    assert write is not None
    with caplog.at_level(logging.WARNING):
        await write  # never raises
    assert f"recording the last use of key {parse_key_id(key)} did not complete" in caplog.text
    assert key.split("_", 2)[2] not in caplog.text


async def test_unknown_key_ids_are_cached_briefly_and_a_new_key_works_after_the_bound() -> None:
    store, clock = MemoryKeyStore(), Clock()
    authenticator = Authenticator(store, cache_seconds=30, negative_cache_seconds=5, clock=clock)
    key, key_id, key_hash = new_key()
    for _ in range(50):
        with pytest.raises(InvalidApiKey):
            await authenticator.authenticate(f"Bearer {key}")
    assert store.reads == 1  # a flood of one unknown id: one read

    from chatgate.gateway.auth import ApiKey

    store.keys[key_id] = ApiKey(key_id=key_id, workspace_id="acme", key_hash=key_hash)  # created now
    clock.now += 5
    assert (await authenticator.authenticate(f"Bearer {key}")).workspace_id == "acme"
    assert store.reads == 2


async def test_the_negative_cache_is_bounded() -> None:
    store = MemoryKeyStore()
    authenticator = Authenticator(store, negative_cache_seconds=60)
    for _ in range(3):
        with pytest.raises(InvalidApiKey):
            await authenticator.authenticate(f"Bearer {new_key()[0]}")
    from chatgate.gateway import auth

    assert len(authenticator._unknown) == 3
    assert auth._CACHE_MAX_ENTRIES == 10_000  # the bound on both caches


async def test_concurrent_lookups_of_one_id_share_one_read() -> None:
    release = asyncio.Event()

    class SlowStore(MemoryKeyStore):
        async def get(self, key_id: str):
            self.reads += 1
            await release.wait()
            return None

    store = SlowStore()
    authenticator = Authenticator(store)
    key = new_key()[0]
    attempts = [asyncio.ensure_future(authenticator.authenticate(f"Bearer {key}")) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*attempts, return_exceptions=True)
    assert all(isinstance(r, InvalidApiKey) for r in results)
    assert store.reads == 1


async def test_a_store_failure_is_a_503_for_every_waiter_and_is_not_cached() -> None:
    from chatgate.errors import ServiceUnavailable

    class FailingStore(MemoryKeyStore):
        async def get(self, key_id: str):
            self.reads += 1
            await asyncio.sleep(0)
            raise ServiceUnavailable("down", headers={"retry-after": "1"})

    store = FailingStore()
    authenticator = Authenticator(store)
    key = new_key()[0]
    results = await asyncio.gather(
        *(authenticator.authenticate(f"Bearer {key}") for _ in range(5)), return_exceptions=True
    )
    assert all(isinstance(r, ServiceUnavailable) for r in results)
    with pytest.raises(ServiceUnavailable):
        await authenticator.authenticate(f"Bearer {key}")
    assert store.reads == 2
