"""/v1/organization/projects/{project_id}/rate_limits: per-model limits (`rl-<model>`), the stack's window
as the unit."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import limits
from chatgate.admin.api import objects
from chatgate.admin.api.common import admin_entered, json_body, limit_of, listing, optional_int, page_after
from chatgate.errors import InvalidRequest
from chatgate.limits.ratelimit import Limits

UNSUPPORTED = (
    "max_images_per_1_minute",
    "max_audio_megabytes_per_1_minute",
    "max_requests_per_1_day",
    "batch_1_day_max_input_tokens",
)


async def list_rate_limits(request: Request) -> JSONResponse:
    actor, store, services = await admin_entered(request)
    settings = services.settings
    found = await limits.list_limits(
        store, actor, request.path_params["project_id"], settings.models, Limits.from_settings(settings)
    )
    chosen, more = page_after(
        found,
        lambda pair: limits.rate_limit_id(pair[0]),
        request.query_params.get("after"),
        limit_of(request, 100),
    )
    return listing([objects.rate_limit(model, value) for model, value in chosen], more)


async def update_rate_limit(request: Request) -> JSONResponse:
    actor, store, services = await admin_entered(request)
    model = limits.model_of(request.path_params["rate_limit_id"])
    body = await json_body(request)
    for name in UNSUPPORTED:
        if body.get(name) is not None:
            raise InvalidRequest(
                f"'{name}' is not a limit chatgate enforces: only requests and tokens per window.",
                param=name,
                code="invalid_value",
            )
    updated = await limits.set_limits(
        store,
        actor,
        request.path_params["project_id"],
        model,
        requests=optional_int(body, "max_requests_per_1_minute"),
        tokens=optional_int(body, "max_tokens_per_1_minute"),
        defaults=Limits.from_settings(services.settings),
    )
    return JSONResponse(objects.rate_limit(model, updated))
