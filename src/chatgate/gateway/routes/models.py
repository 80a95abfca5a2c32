"""GET /openai/{region}/v1/models and /models/{model}: the models the calling workspace may use in the
region, in OpenAI's shape, so `client.models.list()` and `client.models.retrieve()` work.

The list is the workspace's own (the models of its bring-your-own-keys deployment map) where it has one
for the region, else the stack's (CHATGATE_MODELS, then CHATGATE_EMBEDDING_MODELS), in configured order.
`owned_by` says whose Azure resource serves the model: "chatgate" (the stack's) or the workspace's id
(its own). `created` is the date of the model version Azure serves by default (00:00 UTC), 0 for a model
chatgate does not know.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.errors import ModelNotFound
from chatgate.gateway.dependencies import entered
from chatgate.gateway.pipeline import settled
from chatgate.upstream.config import ModelCatalog

# Version dates of the default models' Azure versions (gpt-4o is gpt-4o-2024-05-13, and so on).
MODEL_VERSION_DATES = {
    "gpt-4.1": "2025-04-14",
    "gpt-4.1-nano": "2025-04-14",
    "o4-mini": "2025-04-16",
    "o3-mini": "2025-01-31",
    "o1-preview": "2024-09-12",
    "gpt-4o": "2024-05-13",
    "gpt-4o-mini": "2024-07-18",
    "gpt-4": "2023-06-13",
    "gpt-35-turbo": "2024-01-25",
    "text-embedding-3-small": "2024-01-25",
    "text-embedding-3-large": "2024-01-25",
    "text-embedding-ada-002": "2022-12-15",
}


def created(model: str) -> int:
    day = MODEL_VERSION_DATES.get(model)
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) if day else 0


def model_object(model: str, catalog: ModelCatalog) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": created(model), "owned_by": catalog.owned_by}


async def list_models(request: Request) -> JSONResponse:
    region, caller, services = await entered(request)
    try:
        catalog = await services.upstreams.catalog(region, caller.workspace_id)
    finally:
        await settled(caller, services)
    return JSONResponse(
        {"object": "list", "data": [model_object(model, catalog) for model in catalog.models]}
    )


async def retrieve_model(request: Request) -> JSONResponse:
    model = request.path_params["model"]
    region, caller, services = await entered(request)
    try:
        catalog = await services.upstreams.catalog(region, caller.workspace_id)
    finally:
        await settled(caller, services)
    if model not in catalog:
        raise ModelNotFound(model)
    return JSONResponse(model_object(model, catalog))
