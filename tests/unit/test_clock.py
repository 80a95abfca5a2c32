"""chatgate.clock across a freeze: a sandbox frozen for minutes whose monotonic clock did not advance still
ends every promised bound (key cache, secret cache, limits cache; the pool's keep-alive expiry is in
tests/component/test_hostile_upstream.py), and a wall clock stepped back does not stretch one."""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from chatgate.clock import Clock, Stamp
from chatgate.errors import InvalidApiKey
from chatgate.gateway.auth import Authenticator, parse_key_id
from chatgate.limits.ratelimit import Limits
from chatgate.limits.workspace_limits import WorkspaceDirectory
from chatgate.stores.secrets import ExtensionSecretReader, SecretsManagerSource
from tests.fakes import MemoryKeyStore, MemoryLimits


class Sandbox:
    """Two hand-moved clocks: `freeze` advances only the wall clock, `step_back` moves it back."""

    def __init__(self) -> None:
        self.monotonic_now = 500.0
        self.wall_now = 1_800_000_000.0

    def monotonic(self) -> float:
        return self.monotonic_now

    def wall(self) -> float:
        return self.wall_now

    def run(self, seconds: float) -> None:
        self.monotonic_now += seconds
        self.wall_now += seconds

    def freeze(self, seconds: float) -> None:
        self.wall_now += seconds


def test_elapsed_is_the_larger_of_the_two_clocks() -> None:
    clock = Clock()
    start = Stamp(monotonic=10.0, wall=1000.0)
    assert clock.elapsed(start, Stamp(70.0, 1000.0)) == 60  # wall clock stepped back: monotonic counts
    assert clock.elapsed(start, Stamp(10.0, 1300.0)) == 300  # monotonic stood still: the wall clock counts
    assert clock.passed(start, 60, Stamp(70.0, 1000.0)) and not clock.passed(start, 60, Stamp(69.0, 1059.0))


async def test_a_revoked_key_is_refused_after_a_freeze_the_monotonic_clock_missed() -> None:
    store, sandbox = MemoryKeyStore(), Sandbox()
    key = store.add("acme")
    auth = Authenticator(store, cache_seconds=30, clock=sandbox.monotonic, wall_clock=sandbox.wall)
    await auth.authenticate(f"Bearer {key}")
    key_id = parse_key_id(key)
    assert key_id
    store.keys[key_id] = replace(store.keys[key_id], revoked_at=int(sandbox.wall_now))
    sandbox.freeze(240)  # frozen four minutes; monotonic says no time passed
    with pytest.raises(InvalidApiKey, match="revoked"):
        await auth.authenticate(f"Bearer {key}")


async def test_a_wall_clock_stepped_back_does_not_stretch_the_key_cache() -> None:
    store, sandbox = MemoryKeyStore(), Sandbox()
    key = store.add("acme")
    auth = Authenticator(store, cache_seconds=30, clock=sandbox.monotonic, wall_clock=sandbox.wall)
    await auth.authenticate(f"Bearer {key}")
    sandbox.run(31)
    sandbox.wall_now -= 3600  # NTP stepped the wall clock back an hour
    await auth.authenticate(f"Bearer {key}")
    assert store.reads == 2


async def test_the_secret_and_limits_caches_end_after_a_freeze() -> None:
    sandbox = Sandbox()
    reads: list[str] = []

    def extension(request: httpx.Request) -> httpx.Response:
        reads.append(str(request.url))
        return httpx.Response(200, json={"SecretString": json.dumps({"endpoint": f"https://{len(reads)}"})})

    http = httpx.AsyncClient(transport=httpx.MockTransport(extension))
    secrets = SecretsManagerSource(
        ExtensionSecretReader(http, port=2773, token="t"),
        max_age=60,
        clock=sandbox.monotonic,
        wall_clock=sandbox.wall,
    )
    limits_store = MemoryLimits()
    limits = WorkspaceDirectory(
        limits_store,
        Limits(requests=5, tokens=100),
        cache_seconds=30,
        clock=sandbox.monotonic,
        wall_clock=sandbox.wall,
    )

    assert (await secrets.get_json("chatgate/upstream/eu")) == {"endpoint": "https://1"}
    assert (await limits.limits("acme", "gpt-4o")).requests == 5
    limits_store.limits["acme"] = {"gpt-4o": Limits(requests=1, tokens=100)}
    sandbox.run(10)
    assert (await secrets.get_json("chatgate/upstream/eu")) == {"endpoint": "https://1"}  # within the bounds
    assert (await limits.limits("acme", "gpt-4o")).requests == 5
    sandbox.freeze(120)
    assert (await secrets.get_json("chatgate/upstream/eu")) == {"endpoint": "https://2"}
    assert (await limits.limits("acme", "gpt-4o")).requests == 1
    await http.aclose()
