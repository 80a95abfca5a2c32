"""create_app(): the FastAPI app. Routes live in chatgate.gateway.routes (chat completions, models), the steps
they share in chatgate.gateway.dependencies; this module adds health, the error rendering and the lifespan.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatgate.admin.api import add_admin_routes
from chatgate.console import add_console_routes
from chatgate.errors import (
    ChatgateError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
)
from chatgate.gateway import shutdown
from chatgate.gateway.routes import PREFIXES, add_routes
from chatgate.middleware import RequestContextMiddleware
from chatgate.observability import observation as observability
from chatgate.observability.metrics import MetricsConfig
from chatgate.settings import Settings
from chatgate.wiring import Services, build_services

logger = logging.getLogger(__name__)

__all__ = ["PREFIXES", "create_app"]


async def healthz() -> dict[str, str]:
    """Readiness for Lambda Web Adapter and load balancers; touches no dependency."""
    return {"status": "ok"}


# --- errors -------------------------------------------------------------------------------------------


def render_error(error: ChatgateError) -> JSONResponse:
    observability.current().failed(error.status_code, error.code, upstream=error.from_upstream)
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
        settings = app.state.settings
        # On SIGTERM, streams still running near the grace's end get an error frame
        # (chatgate.gateway.shutdown).
        shutdown.install(settings.shutdown_grace_seconds, settings.settlement_budget_seconds)
        try:
            yield
        finally:
            if owned and app.state.services is not None:
                await app.state.services.aclose(app.state.settings.shutdown_grace_seconds)
                app.state.services = None

    options: dict[str, Any] = {
        "title": "chatgate",
        "lifespan": lifespan,
        "docs_url": None,
        "redoc_url": None,
        "openapi_url": None,
        # No 307 to the path with(out) a trailing slash: behind API Gateway the Location would lack the
        # stage prefix. An unknown path is a 404 in the error shape (the fuzz suite sends such paths).
        "redirect_slashes": False,
    }
    try:
        # FastAPI 0.165+ checks OpenTelemetry's global providers on every request (about 0.02 ms) to
        # instrument it; chatgate's metrics and traces are its own (EMF lines, X-Ray), so that is off.
        app = FastAPI(**options, telemetry={"tracing": False, "metrics": False, "logs": False})
    except TypeError:  # a FastAPI without the option
        app = FastAPI(**options)
    app.state.settings = settings or (services.settings if services else Settings())
    app.state.services = services
    add_routes(app)
    add_admin_routes(app, PREFIXES)
    add_console_routes(app, PREFIXES)
    app.add_api_route("/healthz", healthz, methods=["GET"])
    app.add_exception_handler(ChatgateError, _chatgate_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    settings_ = app.state.settings
    metrics = MetricsConfig(
        namespace=settings_.metrics_namespace,
        per_workspace=settings_.metrics_per_workspace,
        enabled=settings_.metrics_enabled,
    )
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
