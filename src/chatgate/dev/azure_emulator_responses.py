"""The emulator's Responses API, on Azure's v1 surface (the deployment name in `model`):

    POST   /openai/v1/responses                         create (JSON, or typed events with `stream`)
    GET    /openai/v1/responses/{id}                    a stored response
    DELETE /openai/v1/responses/{id}                    {"id", "object": "response", "deleted": true}
    GET    /openai/v1/responses/{id}/input_items        its input items (`order`, `limit`, `after`)

Responses are stored unless `store` is false; `previous_response_id` continues a stored one.
"""

from __future__ import annotations

import asyncio
import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatgate.dev import azure_emulator_responses_wire as rwire
from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_http import admit_v1, error_response
from chatgate.dev.azure_emulator_stream import EventStreamResponse

RESPONSES_PATH = "/openai/v1/responses"
RESPONSE_PATH = "/openai/v1/responses/{response_id}"
INPUT_ITEMS_PATH = "/openai/v1/responses/{response_id}/input_items"


def response_not_found(response_id: str) -> wire.AzureError:
    return wire.invalid_request(f"Response with id '{response_id}' not found.", None, status=404)


def _previous_not_found(response_id: str) -> wire.AzureError:
    error = {
        "message": f"Previous response with id '{response_id}' not found.",
        "type": "invalid_request_error",
        "param": "previous_response_id",
        "code": "previous_response_not_found",
    }
    return wire.AzureError(400, {"error": error}, {})


async def create_response(request: Request) -> Response:
    """POST /openai/v1/responses."""
    state, body, refused = await admit_v1(request, "POST")
    if refused is not None:
        return refused
    if not isinstance(body, dict):
        return error_response(wire.invalid_json())
    deployment = body.get("model")
    if not isinstance(deployment, str) or not deployment:
        return error_response(wire.invalid_request("Missing required parameter: 'model'.", "model"))
    model = state.model_for(deployment)
    if model is None:
        return error_response(wire.deployment_not_found())
    previous = None
    previous_id = body.get("previous_response_id")
    if previous_id is not None:
        previous = state.stored_response(str(previous_id))
        if previous is None:
            return error_response(_previous_not_found(str(previous_id)))
    plan = rwire.plan_response(
        body, model=model, name=state.name, previous=previous, created_at=int(time.time())
    )
    triggers = plan.triggers
    error = None
    if triggers.content_filter:
        error = wire.content_filtered()
    elif triggers.rate_limited(state.name) or state.fail_status == 429:
        error = wire.rate_limited("v1", state.retry_after_s, operation="Responses_Create")
    elif triggers.server_failed(state.name) or state.fail_status == 500:
        error = wire.server_error()
    if error is not None:
        if triggers.slow_ms:
            await asyncio.sleep(triggers.slow_ms / 1000)
        return error_response(error)
    final = rwire.final_response(plan)
    allowance = body.get("max_output_tokens")
    state.consume(
        plan.input_tokens + (allowance if isinstance(allowance, int) else final["usage"]["output_tokens"])
    )
    if plan.store:
        state.store_response(rwire.stored(plan, final))
    if plan.stream:
        events = rwire.response_stream(
            plan, final, first_event_delay_s=state.first_chunk_delay_s, event_delay_s=state.chunk_delay_s
        )
        return EventStreamResponse(
            events, start_delay_s=triggers.slow_ms / 1000, on_end=state.record_stream_end
        )
    if triggers.slow_ms:
        await asyncio.sleep(triggers.slow_ms / 1000)
    return JSONResponse(final)


async def retrieve_response(request: Request) -> Response:
    """GET or DELETE /openai/v1/responses/{id}."""
    method = "DELETE" if request.method == "DELETE" else "GET"
    state, _, refused = await admit_v1(request, method)
    if refused is not None:
        return refused
    response_id = request.path_params["response_id"]
    if method == "DELETE":
        if not state.delete_response(response_id):
            return error_response(response_not_found(response_id))
        return JSONResponse({"id": response_id, "object": "response", "deleted": True})
    stored = state.stored_response(response_id)
    if stored is None:
        return error_response(response_not_found(response_id))
    return JSONResponse(stored.response)


async def list_input_items(request: Request) -> Response:
    """GET /openai/v1/responses/{id}/input_items."""
    state, _, refused = await admit_v1(request, "GET")
    if refused is not None:
        return refused
    response_id = request.path_params["response_id"]
    stored = state.stored_response(response_id)
    if stored is None:
        return error_response(response_not_found(response_id))
    page = rwire.input_items_page(stored.input_items, dict(request.query_params))
    if isinstance(page, str):
        return error_response(wire.invalid_request(f"Invalid value for '{page}'.", page))
    return JSONResponse(page)
