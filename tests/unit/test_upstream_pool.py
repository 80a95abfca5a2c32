"""The pool's rules without a network: the secret's two shapes, the order of resources, Azure's retry
headers, cooldowns and the circuit breaker, on a clock the test moves."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from chatgate.errors import UpstreamError
from chatgate.upstream.config import AzureResource, UpstreamPool, UpstreamRoute
from chatgate.upstream.cooldown import duration_seconds, retry_in
from chatgate.upstream.pool import PoolHealth

SINGLE = {"endpoint": "https://one.openai.azure.com", "api_key": "k", "api_version": "v1", "deployments": {}}


def pool_of(*specs: dict[str, object], region: str = "eu") -> UpstreamPool:
    resources = [{"endpoint": f"https://{s['name']}.openai.azure.com", "api_key": "k", **s} for s in specs]
    return UpstreamPool.from_secret({"resources": resources}, region)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_single_resource_secret_is_a_pool_of_one_and_reads_back_unchanged() -> None:
    pool = UpstreamPool.from_secret(SINGLE, "eu")
    [only] = pool.resources
    assert (only.name, only.priority, only.weight) == ("default", 1, 1.0)
    assert pool.to_secret() == SINGLE  # no pool fields added to a one-resource secret
    # A pool of one serves every model, its map only renaming (as before pools).
    renamed = UpstreamPool.from_secret({**SINGLE, "deployments": {"gpt-4o": "prod-4o"}}, "eu")
    assert renamed.serving("gpt-4.1") == renamed.resources
    assert UpstreamRoute(renamed, "gpt-4o", renamed.resources).first.deployment == "prod-4o"


def test_in_a_pool_a_resource_with_a_map_serves_only_its_models() -> None:
    pool = pool_of({"name": "sweden", "deployments": {"gpt-4o": "d"}}, {"name": "france"})
    assert [r.name for r in pool.serving("gpt-4o")] == ["sweden", "france"]
    assert [r.name for r in pool.serving("o4-mini")] == ["france"]
    assert UpstreamPool.from_secret(pool.to_secret(), "eu") == pool


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ({"resources": []}, "1 to 16"),
        ({"resources": "x"}, "1 to 16"),
        ({"resources": [SINGLE, SINGLE]}, "unique"),
        ({"resources": [{**SINGLE, "name": "bad name"}]}, "resource name"),
        ({"resources": [{**SINGLE, "priority": 0}]}, "priority"),
        ({"resources": [{**SINGLE, "priority": True}]}, "priority"),
        ({"resources": [{**SINGLE, "weight": -1}]}, "weight"),
        ({"resources": [["not", "an", "object"]]}, "object"),
        ({"resources": [{"name": "x", "api_key": "k"}]}, "endpoint"),
    ],
)
def test_an_unusable_pool_secret_is_refused_with_a_reason(secret: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        UpstreamPool.from_secret(secret, "eu")


def test_order_is_by_priority_then_weighted_at_random() -> None:
    pool = pool_of(
        {"name": "backup", "priority": 2},
        {"name": "big", "weight": 3},
        {"name": "small", "weight": 1},
    )
    route = UpstreamRoute(pool, "gpt-4o", pool.resources)
    health = PoolHealth(draw=random.Random(21).random)
    firsts = Counter(health.order(route)[0].name for _ in range(3000))
    assert health.order(route)[-1].name == "backup"  # never before a smaller priority
    assert set(firsts) == {"big", "small"}
    assert 2.5 < firsts["big"] / firsts["small"] < 3.5  # weight 3 against weight 1


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "Thu, 01 Jan 1970 00:00:10 GMT"}, 10.0),
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-reset-tokens": "20ms"}, 0.02),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_azure_s_retry_headers_are_read_in_seconds(headers: dict[str, str], seconds: float | None) -> None:
    assert (
        retry_in(headers, now=0.0) == pytest.approx(seconds)
        if seconds is not None
        else retry_in(headers) is None
    )


def test_durations() -> None:
    assert duration_seconds("1h2m3s") == 3723
    assert duration_seconds("-1") is None
    assert duration_seconds("nan") is None


def test_a_throttled_resource_is_skipped_until_its_time_and_an_all_cooling_pool_says_when() -> None:
    clock = Clock()
    pool = pool_of({"name": "sweden"}, {"name": "france", "priority": 2})
    route = UpstreamRoute(pool, "gpt-4o", pool.resources)
    health = PoolHealth(clock=clock)
    sweden, france = pool.resources
    health.throttled(route, sweden, 7.0)
    assert not health.admit(route, sweden) and health.admit(route, france)
    assert health.unavailable(route) is None
    health.throttled(route, france, 3.0)
    error = health.unavailable(route)
    assert error is not None and error.status_code == 429
    assert error.headers == {"retry-after": "3", "retry-after-ms": "3000"}
    clock.now += 3
    assert health.unavailable(route) is None and health.admit(route, france)
    # Per model: another model of the same resource is not throttled.
    other = UpstreamRoute(pool, "gpt-4.1", pool.resources)
    assert health.admit(other, sweden)


def test_a_failing_resource_opens_its_circuit_and_one_request_probes_it() -> None:
    clock = Clock()
    pool = pool_of({"name": "sweden"})
    route = UpstreamRoute(pool, "gpt-4o", pool.resources)
    [sweden] = pool.resources
    health = PoolHealth(clock=clock, failure_threshold=3, open_seconds=5, max_open_seconds=12)
    for _ in range(2):
        health.failed(route, sweden)
        assert health.admit(route, sweden)  # closed until the third failure in a row
    health.failed(route, sweden)
    assert not health.admit(route, sweden)
    error = health.unavailable(route)
    assert error is not None and error.status_code == 503 and error.headers["retry-after"] == "5"
    clock.now += 5
    assert health.admit(route, sweden)  # the probe
    assert not health.admit(route, sweden)  # everyone else waits for it
    health.failed(route, sweden)  # the probe failed: open twice as long
    clock.now += 9
    assert not health.admit(route, sweden)
    clock.now += 1
    assert health.admit(route, sweden)
    health.failed(route, sweden)
    clock.now += 12  # capped at max_open_seconds
    assert health.admit(route, sweden)
    health.succeeded(route, sweden)
    assert health.admit(route, sweden) and health.admit(route, sweden)  # closed: no probe limit


def test_a_probe_whose_request_vanished_frees_the_resource_later() -> None:
    clock = Clock()
    pool = pool_of({"name": "sweden"})
    route = UpstreamRoute(pool, "gpt-4o", pool.resources)
    [sweden] = pool.resources
    health = PoolHealth(clock=clock, failure_threshold=1, open_seconds=5)
    health.failed(route, sweden)
    clock.now += 5
    assert health.admit(route, sweden)
    health.released(route, sweden)  # cancelled before an outcome
    assert health.admit(route, sweden)


async def test_the_loop_stops_at_max_attempts_and_raises_the_last_error() -> None:
    pool = pool_of(*({"name": f"r{i}"} for i in range(5)))
    route = UpstreamRoute(pool, "gpt-4o", pool.resources)
    health = PoolHealth(max_attempts=3)
    called: list[str] = []

    async def attempt(target: object) -> None:
        called.append(target.resource.name)  # type: ignore[attr-defined]
        error = UpstreamError(f"failed {len(called)}")
        error.failover, error.upstream_status = "failing", 503
        raise error

    with pytest.raises(UpstreamError, match="failed 3"):
        await health.call(route, attempt)
    assert len(called) == 3 and len(set(called)) == 3


async def test_an_error_not_marked_for_failover_ends_the_loop_at_once() -> None:
    pool = pool_of({"name": "a"}, {"name": "b"})
    route = UpstreamRoute(pool, "gpt-4o", pool.resources)
    called: list[str] = []

    async def attempt(target: object) -> None:
        called.append(target.resource.name)  # type: ignore[attr-defined]
        error = UpstreamError("refused credentials")
        error.upstream_status = 401
        raise error

    with pytest.raises(UpstreamError):
        await PoolHealth().call(route, attempt)
    assert len(called) == 1


def test_an_azure_resource_keeps_its_repr_free_of_the_key() -> None:
    assert "secret-key" not in repr(AzureResource("https://x.openai.azure.com", "secret-key", name="x"))


async def test_the_models_list_and_routes_follow_what_the_pool_deploys() -> None:
    from chatgate.errors import ModelNotFound
    from chatgate.upstream.config import UpstreamDirectory
    from tests.fakes import MemorySecrets

    pool = {
        "resources": [
            {**SINGLE, "name": "sweden", "deployments": {"gpt-4o": "prod-4o"}},
            {
                **SINGLE,
                "name": "france",
                "deployments": {"gpt-4o": "4o", "gpt-4o-mini": "mini"},
                "priority": 2,
            },
        ]
    }
    upstreams = UpstreamDirectory(
        MemorySecrets({"up/eu": pool}),
        models=("gpt-4o", "gpt-4o-mini", "o4-mini"),
        secret_name=lambda r: f"up/{r}",
    )
    assert (await upstreams.catalog("eu", "acme")).models == ("gpt-4o", "gpt-4o-mini")
    route = await upstreams.route("eu", "acme", "gpt-4o")
    assert [(r.name, route.target(r).deployment) for r in route.resources] == [
        ("sweden", "prod-4o"),
        ("france", "4o"),
    ]
    assert [r.name for r in (await upstreams.route("eu", "acme", "gpt-4o-mini")).resources] == ["france"]
    with pytest.raises(ModelNotFound):
        await upstreams.route("eu", "acme", "o4-mini")  # allowed by the stack, deployed nowhere in the pool
