"""What every emulator endpoint shares: recording the request, Azure's auth rules, api-version rules."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_state import EmulatorState, RecordedRequest

_DATED_API_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(-preview)?$")
# Reasoning models answer only on dated API versions from this one on (Azure: "Model o3-mini is enabled
# only for api versions 2024-12-01-preview and later"); Azure's v1 surface serves them all.
REASONING_MIN_API_VERSION = "2024-12-01-preview"
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_MODEL_VERSION_SUFFIX = re.compile(r"-\d{4}-\d{2}-\d{2}$")
# What the v1 surface accepts as `api-version` (none at all being the usual).
V1_API_VERSIONS = ("", "v1", "preview", "latest")


def error_response(error: wire.AzureError) -> JSONResponse:
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


async def record(request: Request) -> Any:
    """Record the request in the emulator's state; returns the parsed JSON body (None if absent/bad)."""
    state: EmulatorState = request.app.state.emulator
    raw = await request.body()
    body: Any = None
    if raw:
        with contextlib.suppress(ValueError):
            body = json.loads(raw)
    headers = {key.lower(): value for key, value in request.headers.items()}
    state.record(RecordedRequest(request.method, request.url.path, dict(request.query_params), headers, body))
    return body


def dated_api_version(value: str) -> bool:
    """Whether `value` is a dated data-plane API version such as 2024-10-21 or 2025-01-01-preview."""
    return _DATED_API_VERSION.match(value) is not None


def authorized(request: Request, state: EmulatorState, *, bearer: bool) -> bool:
    """The dated surface takes the key in `api-key`; the v1 surface also as `Authorization: Bearer`."""
    if request.headers.get("api-key") == state.api_key:
        return True
    return bearer and request.headers.get("authorization") == f"Bearer {state.api_key}"


def base_model(model: str) -> str:
    """`o3-mini-2025-01-31` -> `o3-mini`."""
    return _MODEL_VERSION_SUFFIX.sub("", model)


def is_reasoning_model(model: str) -> bool:
    """o-series and gpt-5 models think before answering (hidden reasoning tokens)."""
    return model.startswith(_REASONING_PREFIXES)


def api_version_refuses(model: str, api_version: str) -> wire.AzureError | None:
    """Azure's 400 for a reasoning model on a dated API version older than 2024-12-01-preview."""
    match = _DATED_API_VERSION.match(api_version)
    minimum = _DATED_API_VERSION.match(REASONING_MIN_API_VERSION)
    if match is None or minimum is None or not is_reasoning_model(model):
        return None
    if match.group(1) >= minimum.group(1):
        return None
    message = (
        f"Model {base_model(model)} is enabled only for api versions {REASONING_MIN_API_VERSION} and later"
    )
    return wire.AzureError(400, {"error": {"code": "BadRequest", "message": message}}, {})


async def admit_v1(request: Request, method: str = "POST") -> tuple[EmulatorState, Any, Response | None]:
    """Record the request, then the v1 surface's checks shared by its endpoints: the method, no dated
    api-version, the key (as `api-key` or a bearer token). Returns (state, parsed body, refusal or None)."""
    state: EmulatorState = request.app.state.emulator
    body = await record(request)
    if request.method != method:
        return state, body, error_response(wire.resource_not_found())
    if request.query_params.get("api-version", "") not in V1_API_VERSIONS:
        return state, body, error_response(wire.api_version_not_supported())
    if not authorized(request, state, bearer=True):
        return state, body, error_response(wire.access_denied())
    return state, body, None


def v1_deployment(body: Any) -> str | wire.AzureError:
    """The deployment a v1 body names in `model`, or Azure's 400 when the body is not an object naming one."""
    if not isinstance(body, dict):
        return wire.invalid_json()
    deployment = body.get("model")
    if not isinstance(deployment, str) or not deployment:
        return wire.invalid_request("you must provide a model parameter", None)
    return deployment
