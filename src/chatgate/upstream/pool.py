"""Routing one request over its pool (docs/upstreams.md): which resource first, when to try the next, which
resources to skip for a while.

- Order: by priority (smaller first), weighted at random within a priority (Efraimidis-Spirakis: each
  resource draws u ** (1 / weight), the largest first), as Azure API Management's backend pools do.
- Failover: an attempt that fails with Azure's 429, a 5xx, a refused connection or a connect timeout (the
  adapter marks those errors, upstream/azure.py) is followed by the next resource that deploys the model,
  up to `max_attempts` attempts and only while the request is younger than `window_seconds`. The caller
  (the pipeline) only ever hands over attempts that relay nothing before they succeed: a JSON answer, or a
  stream up to its status line. Any other error (a 400, a content filter, a BYOK key refused, a read
  timeout) ends the request as it is.
- Cooling down, per instance and per (pool, resource, model): a 429 skips the resource until Azure's
  `retry-after` / `retry-after-ms` / `x-ratelimit-reset-*` time; `failure_threshold` failures in a row open a
  circuit breaker for `open_seconds`, doubling on every failed probe up to `max_open_seconds`; once open
  long enough, one request probes it (others still skip it) and its outcome closes or reopens it.
- A request whose every resource is cooling is answered at once, with nothing sent to Azure: 429 when one of
  them is throttled, 503 when all are failing, `retry-after` set to the earliest return.

Times are wall-clock seconds (`time.time`): an Azure `retry-after` is a moment in time, and a Lambda sandbox
frozen between invocations must not stretch a cooldown the way a frozen monotonic clock would.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from chatgate.errors import ChatgateError, UpstreamRejected
from chatgate.observability import observation as observability
from chatgate.upstream.config import AzureResource, UpstreamRoute, UpstreamTarget
from chatgate.upstream.cooldown import FAILING, THROTTLED

T = TypeVar("T")

# A 429 that names no time: skip the resource this long. A time past the cap is taken as the cap.
DEFAULT_THROTTLE_SECONDS = 1.0
MAX_THROTTLE_SECONDS = 300.0
# A probe that never reports (its request was cancelled) frees the resource for another probe after this.
PROBE_SECONDS = 30.0


@dataclass(slots=True)
class _Health:
    """One (pool, resource, model)'s state on this instance."""

    until: float = 0.0  # skipped before this time
    throttled: bool = False  # cooling after a 429 (else after failures)
    failures: int = 0  # consecutive failures
    open_for: float = 0.0  # the breaker's current interval (0: closed)
    probe_until: float = 0.0  # a probe is in flight until then


class PoolHealth:
    """Per-instance health of every resource this instance has called, and the failover loop."""

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        window_seconds: float = 30.0,
        failure_threshold: int = 3,
        open_seconds: float = 5.0,
        max_open_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.max_attempts = max_attempts
        self.window_seconds = window_seconds
        self.failure_threshold = failure_threshold
        self.open_seconds = open_seconds
        self.max_open_seconds = max_open_seconds
        self.clock = clock
        self._draw = draw
        self._health: dict[tuple[str, str, str], _Health] = {}

    # --- order and availability ---------------------------------------------------------------------------

    def order(self, route: UpstreamRoute) -> list[AzureResource]:
        """The route's resources in the order to try them: priority, then weighted at random."""

        def key(resource: AzureResource) -> tuple[int, float]:
            draw = max(self._draw(), 1e-12)
            return resource.priority, -(draw ** (1.0 / resource.weight))

        return sorted(route.resources, key=key)

    def _state(self, route: UpstreamRoute, resource: AzureResource) -> _Health:
        key = (route.pool.key, resource.name, route.model)
        found = self._health.get(key)
        if found is None:
            if len(self._health) > 10_000:
                self._health.clear()
            found = self._health[key] = _Health()
        return found

    def _cooling(self, health: _Health, now: float) -> bool:
        if now < health.until:
            return True
        return health.open_for > 0 and now < health.probe_until  # open, and another request is probing

    def cooling(self, route: UpstreamRoute) -> int:
        """How many of the route's resources are skipped right now."""
        now = self.clock()
        return sum(self._cooling(self._state(route, resource), now) for resource in route.resources)

    def unavailable(self, route: UpstreamRoute) -> ChatgateError | None:
        """The error to answer at once when every resource of the route is cooling (None otherwise)."""
        now = self.clock()
        states = [self._state(route, resource) for resource in route.resources]
        if not states or not all(self._cooling(health, now) for health in states):
            return None
        back = min(max(health.until, health.probe_until) for health in states) - now
        return all_cooling(route, back, throttled=any(health.throttled for health in states))

    def admit(self, route: UpstreamRoute, resource: AzureResource) -> bool:
        """Whether to call the resource now (claiming the probe when its breaker is due for one)."""
        now = self.clock()
        health = self._state(route, resource)
        if self._cooling(health, now):
            return False
        if health.open_for > 0:
            health.probe_until = now + PROBE_SECONDS
        return True

    # --- outcomes -------------------------------------------------------------------------------------------

    def succeeded(self, route: UpstreamRoute, resource: AzureResource) -> None:
        health = self._state(route, resource)
        health.until = health.probe_until = health.open_for = 0.0
        health.failures = 0
        health.throttled = False

    def throttled(self, route: UpstreamRoute, resource: AzureResource, retry_in: float | None) -> None:
        seconds = (
            DEFAULT_THROTTLE_SECONDS if retry_in is None else min(max(retry_in, 0.0), MAX_THROTTLE_SECONDS)
        )
        health = self._state(route, resource)
        health.until = self.clock() + seconds
        health.throttled = True
        health.probe_until = 0.0

    def failed(self, route: UpstreamRoute, resource: AzureResource) -> None:
        health = self._state(route, resource)
        health.failures += 1
        health.throttled = False
        health.probe_until = 0.0
        if health.failures >= self.failure_threshold:
            doubled = health.open_for * 2 if health.open_for else self.open_seconds
            health.open_for = min(doubled, self.max_open_seconds)
            health.until = self.clock() + health.open_for

    def released(self, route: UpstreamRoute, resource: AzureResource) -> None:
        """An attempt ended without an outcome (its request was cancelled): free its probe claim."""
        self._state(route, resource).probe_until = 0.0

    # --- the loop -------------------------------------------------------------------------------------------

    async def call(self, route: UpstreamRoute, attempt: Callable[[UpstreamTarget], Awaitable[T]]) -> T:
        """Run `attempt` on the route's resources until one answers, or an error is not worth another
        resource, or the attempts or the window run out; the last error is raised then."""
        observed = observability.current()
        started = time.perf_counter()
        last: ChatgateError | None = None
        tried = 0
        for resource in self.order(route):
            if tried >= self.max_attempts or (tried and time.perf_counter() - started > self.window_seconds):
                break
            if not self.admit(route, resource):
                continue
            tried += 1
            began = time.perf_counter()
            reported = False
            try:
                result = await attempt(route.target(resource))
                reported = True
                self.succeeded(route, resource)
                observed.attempted(resource.name, 200, began)
                return result
            except ChatgateError as error:
                reported = True
                observed.attempted(resource.name, error.upstream_status or error.status_code, began)
                if error.failover == THROTTLED:
                    self.throttled(route, resource, error.retry_in)
                elif error.failover == FAILING:
                    self.failed(route, resource)
                else:
                    if isinstance(error.upstream_status, int) and error.upstream_status < 500:
                        self.succeeded(route, resource)  # it answered: a 400 is the request's fault
                    raise
                last = error
            finally:
                if not reported:
                    self.released(route, resource)
        if last is not None:
            raise last
        raise self.unavailable(route) or all_cooling(route, DEFAULT_THROTTLE_SECONDS, throttled=True)


def all_cooling(route: UpstreamRoute, seconds: float, *, throttled: bool) -> ChatgateError:
    """429 (throttled) or 503 (failing) with the earliest return; names no resource (they are internal)."""
    seconds = max(seconds, 0.001)
    headers = {
        "retry-after": str(max(1, math.ceil(seconds))),
        "retry-after-ms": str(math.ceil(seconds * 1000)),
    }
    where = f"model `{route.model}` in region '{route.pool.region}'"
    if throttled:
        return UpstreamRejected(
            429,
            f"Every Azure OpenAI resource serving {where} is rate limiting requests. Please retry after "
            f"{headers['retry-after']} s.",
            error_type="upstream_rate_limit",
            param=None,
            code="rate_limit_exceeded",
            headers=headers,
        )
    return UpstreamRejected(
        503,
        f"Every Azure OpenAI resource serving {where} is failing. Please retry after "
        f"{headers['retry-after']} s.",
        error_type="server_error",
        param=None,
        code="upstream_unavailable",
        headers=headers,
    )
