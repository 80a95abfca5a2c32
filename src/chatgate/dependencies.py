"""The steps every route shares, as FastAPI dependencies named for what the route receives:
the instance's Services, the served region, the authenticated caller, and the size-capped body."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from chatgate import observability
from chatgate.auth import Principal
from chatgate.errors import InvalidRequest, NotFound
from chatgate.wiring import Services, build_services


async def get_services(request: Request) -> Services:
    """The instance's services; built on first use where no lifespan ran (the Mangum handler)."""
    services: Services | None = request.app.state.services
    if services is None:
        services = request.app.state.services = build_services(request.app.state.settings)
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def served_region(region: str, services: ServicesDep) -> str:
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


Region = Annotated[str, Depends(served_region)]


async def authenticated(request: Request, services: ServicesDep) -> Principal:
    principal = await services.authenticator.authenticate(request.headers.get("authorization"))
    observability.current().identify(workspace=principal.workspace_id)
    return principal


Caller = Annotated[Principal, Depends(authenticated)]


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
