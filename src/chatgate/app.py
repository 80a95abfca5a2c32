"""create_app(): the FastAPI app. The chat completions route reads as the pipeline it runs:

region -> authenticate -> validate -> resolve upstream -> reserve rate limit -> call upstream
       -> respond (JSON, or a stream) -> reconcile usage
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatgate.auth import Principal
from chatgate.errors import ChatgateError, InvalidRequest, MethodNotAllowed, NotFound
from chatgate.middleware import RequestContextMiddleware
from chatgate.settings import Settings
from chatgate.streaming import EventStreamResponse
from chatgate.usage import Accounting, prompt_tokens
from chatgate.validation import parse_body, validate_chat_request
from chatgate.wiring import Services, build_services

logger = logging.getLogger(__name__)

# `/api/public` serves the same API for dedicated deployments behind one domain.
PREFIXES = ("", "/api/public")


# --- dependencies: each is one step of the pipeline, named for what the route receives ---------------


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
    return region


Region = Annotated[str, Depends(served_region)]


async def authenticated(request: Request, services: ServicesDep) -> Principal:
    return await services.authenticator.authenticate(request.headers.get("authorization"))


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


# --- routes -------------------------------------------------------------------------------------------


async def chat_completions(
    region: Region, caller: Caller, request: Request, services: ServicesDep
) -> Response:
    """POST /openai/{region}/v1/chat/completions"""
    raw = await read_body(request, services.settings.max_body_bytes)
    chat = validate_chat_request(parse_body(raw))
    target = await services.upstreams.resolve(region, caller.workspace_id, chat.model)

    prompt = await prompt_tokens(chat.model, chat.forward, len(raw))
    allowance = chat.max_completion_tokens or services.settings.default_completion_reserve
    limits = await services.workspaces.limits(caller.workspace_id, chat.model)
    reservation = await services.limiter.reserve(caller.workspace_id, chat.model, prompt + allowance, limits)
    accounting = Accounting(services.limiter, reservation, chat.model, prompt, services.usage)
    headers = reservation.headers()

    try:
        if chat.stream:
            upstream = await services.azure.open_stream(target, chat.upstream_body())
        else:
            completion = await services.azure.complete(target, chat.upstream_body())
    except ChatgateError as error:
        await accounting.failed()
        error.headers = {**headers, **error.headers}
        raise
    if chat.stream:
        return EventStreamResponse(
            upstream,
            include_usage=chat.include_usage,
            headers=headers,
            on_finish=accounting.stream_finished,
        )
    return Response(
        completion.content,
        media_type="application/json",
        headers=headers,
        background=BackgroundTask(accounting.completed, completion.usage),
    )


async def healthz() -> dict[str, str]:
    """Readiness for Lambda Web Adapter and load balancers; touches no dependency."""
    return {"status": "ok"}


# --- errors -------------------------------------------------------------------------------------------


def render_error(error: ChatgateError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status_code, headers=error.headers)


async def _chatgate_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatgateError)
    return render_error(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return render_error(
            MethodNotAllowed(f"Method {request.method} is not allowed for {request.url.path}.")
        )
    return render_error(NotFound(f"Invalid URL ({request.method} {request.url.path})", code="unknown_url"))


async def _validation_error(_request: Request, _exc: Exception) -> Response:
    return render_error(InvalidRequest("The request could not be understood.", code="invalid_request"))


# --- the app ------------------------------------------------------------------------------------------


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """The gateway. Without `services`, they are built from `settings` at startup (lifespan), or on the
    first request where no lifespan runs (Mangum calls the lifespan on every invocation, so the Lambda
    handler turns it off)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.services is None
        if owned:  # build clients at startup, before the first request (uvicorn, Lambda Web Adapter)
            app.state.services = build_services(app.state.settings)
        try:
            yield
        finally:
            if owned and app.state.services is not None:
                await app.state.services.aclose()
                app.state.services = None

    app = FastAPI(
        title="chatgate",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings or (services.settings if services else Settings())
    app.state.services = services
    for prefix in PREFIXES:
        app.add_api_route(
            f"{prefix}/openai/{{region}}/v1/chat/completions", chat_completions, methods=["POST"]
        )
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_exception_handler(ChatgateError, _chatgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(RequestContextMiddleware)
    return app
