"""The pipeline every API's requests walk, written once; each API is an adapter (chatgate.gateway.apis):

    region -> key -> validate -> upstream -> reserve -> call upstream (failover) -> relay -> settle -> end

The route resolves the region and authenticates (dependencies.entered); `run` does the rest. Every
authenticated request is settled exactly once before its response ends (chatgate.gateway.settlement): a JSON
answer
is written with `more_body=True`, settled, then ended; a stream relays every event, settles, then ends; any
error between authentication and the response (whatever its type) releases the reservation before the
error is answered.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, TypeVar, cast

import anyio
from fastapi import Request, Response
from starlette.types import Receive, Scope, Send

from chatgate.concurrently import both
from chatgate.errors import ChatgateError, RateLimitExceeded
from chatgate.gateway.apis.base import PinnedApi
from chatgate.gateway.dependencies import read_body
from chatgate.gateway.settlement import Settlement, utc_day
from chatgate.gateway.streaming import EventStreamResponse
from chatgate.limits.ratelimit import ReservationInDoubt
from chatgate.limits.usage import COMPLETIONS, usage_api
from chatgate.observability import observation as observability

if TYPE_CHECKING:
    from chatgate.gateway.apis.base import Api, ApiRequest, StreamingApi
    from chatgate.gateway.auth import Principal
    from chatgate.upstream.config import UpstreamRoute, UpstreamTarget
    from chatgate.wiring import Services

RequestT = TypeVar("RequestT", bound="ApiRequest")
T = TypeVar("T")


def settlement_for(caller: Principal, services: Services, api: str = COMPLETIONS) -> Settlement:
    """The settlement of one authenticated request (`api`: the usage endpoint its record belongs to)."""
    return Settlement(
        caller, authenticator=services.authenticator, limiter=services.limiter, ledger=services.usage, api=api
    )


async def run(
    api: Api[RequestT], region: str, caller: Principal, request: Request, services: Services
) -> Response:
    """Serve one authenticated request of `api` in `region`."""
    settings = services.settings
    observed = observability.observation_of(request.scope)  # facts for metrics, server-timing, trace
    observed.step("authenticate", observed.started)
    settlement = settlement_for(caller, services, usage_api(api.name))
    headers: dict[str, str] = {}
    try:
        began = time.perf_counter()
        raw = await read_body(request, settings.max_body_bytes)
        parsed = api.parse(raw)
        # The upstream and the limits at once (each a round trip on a cold instance). The limits come
        # before counting: a prompt above the token limit is refused whatever its size, so counting a
        # hostile 4 MiB body stops there (tokens.count_prompt_tokens, stop_above).
        route, limits = await both(
            services.upstreams.route(region, caller.workspace_id, parsed.model),
            services.workspaces.limits(caller.workspace_id, parsed.model),
        )
        observed.identify(model=parsed.model)  # allowed for this caller: safe as a metric dimension
        if isinstance(api, PinnedApi):  # a stored response's conversation lives on one resource only
            route = await api.pin(route, parsed)
        pools = services.pools
        refused = pools.unavailable(route)  # every resource cooling: answered now, nothing reserved or sent
        observed.routed(_pool_kind(route), pools.cooling(route), exhausted=refused is not None)
        if refused is not None:
            raise refused
        prompt = await api.prompt_tokens(parsed, stop_above=limits.tokens)
        allowance = parsed.max_output_tokens or settings.default_completion_reserve
        if not api.reserves_completion:
            allowance = 0  # embeddings: the prompt is the whole cost
        observed.step("validate", began)
        began = time.perf_counter()
        try:
            reservation = await services.limiter.reserve(
                caller.workspace_id, parsed.model, prompt + allowance, limits
            )
        except RateLimitExceeded:  # chatgate's own refusal: counted in the ledger before the 429 is sent
            with anyio.CancelScope(shield=True):
                await services.usage.refused(caller.workspace_id, utc_day(), parsed.model, api=settlement.api)
            raise
        observed.step("reserve", began)
        settlement.admitted(reservation, prompt)
        headers = reservation.headers()

        if parsed.stream:
            # Only a StreamingApi parses a request with `stream` true (an isinstance check on the protocol
            # would cost 20 us a request).
            streaming = cast("StreamingApi[RequestT]", api)
            upstream = await _failover(
                services, route, lambda target: streaming.open_stream(services.azure, target, parsed)
            )
            settlement.resource = observed.resource  # the resource that answered: in the usage record
            return EventStreamResponse(
                upstream,
                streaming.stream_relay(parsed),
                headers=headers,
                settle=settlement.stream_ended,
                heartbeat_seconds=settings.stream_heartbeat_seconds,
                max_seconds=settings.stream_max_seconds,
            )
        answer = await _failover(services, route, lambda target: api.complete(services.azure, target, parsed))
        settlement.resource = observed.resource
    except BaseException as error:
        if isinstance(error, ReservationInDoubt):  # the admission may have been applied: released if so
            settlement.admitted(error.reservation, 0)
        with anyio.CancelScope(shield=True):
            await settlement.abandoned()
        if isinstance(error, ChatgateError):
            error.headers = {**headers, **error.headers}
        raise
    return SettledResponse(answer.content, headers=headers, settle=lambda: settlement.completed(answer.usage))


def _pool_kind(route: UpstreamRoute) -> str:
    return "stack" if route.pool.byok_workspace is None else "byok"


async def _failover(
    services: Services, route: UpstreamRoute, attempt: Callable[[UpstreamTarget], Awaitable[T]]
) -> T:
    """One upstream call over the route's pool (upstream/pool.py): the next resource after a 429, a 5xx or
    an unreachable one, before anything is relayed. One reservation covers every attempt; the answer's usage
    is the only usage charged (Azure bills no 429 and no refused connection)."""
    observed = observability.current()
    try:
        return await services.pools.call(route, attempt)
    except ChatgateError as error:
        if error.failover is not None:  # nothing served it: is any resource left?
            cooling = services.pools.cooling(route)
            observed.routed(_pool_kind(route), cooling, exhausted=cooling == len(route.resources))
        raise
    finally:  # the metrics line counts the resources cooling once the request is done with the pool
        observed.routed(_pool_kind(route), services.pools.cooling(route))


async def settled(caller: Principal, services: Services) -> None:
    """Settle a request that reserves nothing (GET routes): the key's last use, when due."""
    with anyio.CancelScope(shield=True):
        await settlement_for(caller, services).abandoned()


class SettledResponse(Response):
    """A JSON answer whose request is settled before its body ends: the body is written (chunked, no
    content-length, so no client or Lambda Web Adapter takes it for complete), then the settlement runs,
    shielded, concurrently with the client reading it, and only then the final empty body message ends the
    response (in buffered mode Mangum returns only then)."""

    media_type = "application/json"

    def __init__(
        self, content: bytes, *, headers: Mapping[str, str], settle: Callable[[], Awaitable[None]]
    ) -> None:
        super().__init__(content, headers=dict(headers), media_type=self.media_type)
        self.settle = settle
        del self.headers["content-length"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        settling = asyncio.ensure_future(self.settle())
        try:
            await send(
                {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
            )
            await send({"type": "http.response.body", "body": self.body, "more_body": True})
        finally:
            with anyio.CancelScope(shield=True):
                await settling
        await send({"type": "http.response.body", "body": b"", "more_body": False})
