"""The steps every route takes first, in order (`entered`): the instance's Services, the served region,
the authenticated caller; and the size-capped body.

Plain calls rather than FastAPI dependencies: the walk reads the same in each route, and FastAPI's
dependency solving cost about 0.12 ms a request (bench: a route with these three as dependencies against
the same calls made in the route)."""

from __future__ import annotations

from typing import NamedTuple

from fastapi import Request

from chatgate.errors import InvalidRequest, NotFound
from chatgate.gateway.auth import Principal
from chatgate.observability import observation as observability
from chatgate.wiring import Services, build_services


class Entered(NamedTuple):
    region: str
    caller: Principal
    services: Services


async def entered(request: Request) -> Entered:
    """region -> key: the path's region if this stack serves it (else 404), then the caller's key (401)."""
    services = services_of(request)
    region = served_region(request.path_params["region"], services)
    return Entered(region, await authenticated(request, services), services)


def services_of(request: Request) -> Services:
    """The instance's services; built on first use where no lifespan ran (the Mangum handler)."""
    services: Services | None = request.app.state.services
    if services is None:
        services = request.app.state.services = build_services(request.app.state.settings)
    return services


def served_region(region: str, services: Services) -> str:
    """The path's region, if this stack serves it (data residency: each region has its own upstream)."""
    regions = services.settings.regions
    if region not in regions:
        valid = ", ".join(f"'{r}'" for r in regions)
        raise NotFound(
            f"Unknown region '{region}'. This endpoint serves: {valid}.",
            param="region",
            code="region_not_found",
        )
    observability.current().identify(region=region)  # served: safe as a metric dimension
    return region


async def authenticated(request: Request, services: Services) -> Principal:
    principal = await services.authenticator.authenticate(request.headers.get("authorization"))
    observability.current().identify(workspace=principal.workspace_id)
    return principal


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with a 400 once it grows past `limit` bytes."""
    too_large = InvalidRequest(
        f"The request body is too large. The maximum size is {limit} bytes.",
        code="request_too_large",
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
