"""The emulator's chat completions, on both of Azure's surfaces:

dated  POST /openai/deployments/{deployment}/chat/completions?api-version=YYYY-MM-DD[-preview]
v1     POST /openai/v1/chat/completions          (the deployment in `model`, no api-version)
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_http import (
    admit_v1,
    api_version_refuses,
    authorized,
    dated_api_version,
    error_response,
    record,
    v1_deployment,
)
from chatgate.dev.azure_emulator_reply import encoding_for, plan_reply
from chatgate.dev.azure_emulator_state import EmulatorState
from chatgate.dev.azure_emulator_stream import EventStreamResponse, azure_stream

DATED_CHAT_COMPLETIONS_PATH = "/openai/deployments/{deployment}/chat/completions"
V1_CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"


def _validate(body: Any) -> wire.AzureError | None:
    """The few checks Azure makes before the model sees the request."""
    if not isinstance(body, dict):
        return wire.invalid_json()
    messages = body.get("messages")
    if messages is None:
        return wire.invalid_request("'messages' is a required property", None)
    if not isinstance(messages, list) or not messages:
        return wire.invalid_request(
            f"Invalid 'messages': expected a non-empty array, got {json.dumps(messages)}.", "messages"
        )
    return None


async def dated_chat_completions(request: Request) -> Response:
    """POST /openai/deployments/{deployment}/chat/completions?api-version=..."""
    state: EmulatorState = request.app.state.emulator
    body = await record(request)
    api_version = request.query_params.get("api-version", "")
    if request.method != "POST" or not dated_api_version(api_version):
        return error_response(wire.resource_not_found())
    if not authorized(request, state, bearer=False):
        return error_response(wire.access_denied())
    return await _answer(state, body, request.path_params["deployment"], api_version)


async def v1_chat_completions(request: Request) -> Response:
    """POST /openai/v1/chat/completions (deployment name in `model`)."""
    state, body, refused = await admit_v1(request)
    if refused is not None:
        return refused
    deployment = v1_deployment(body)
    if isinstance(deployment, wire.AzureError):
        return error_response(deployment)
    return await _answer(state, body, deployment, "v1")


async def _answer(state: EmulatorState, body: Any, deployment: str, api_version: str) -> Response:
    model = state.model_for(deployment)
    if model is None:
        return error_response(wire.deployment_not_found())
    refused = api_version_refuses(model, api_version)
    if refused is not None:
        return error_response(refused)
    invalid = _validate(body)
    if invalid is not None:
        return error_response(invalid)
    plan = plan_reply(body, model=model, name=state.name, created=int(time.time()))
    triggers = plan.triggers
    error = None
    if triggers.content_filter:
        error = wire.content_filtered()
    elif triggers.rate_limited(state.name) or state.fail_status == 429:
        error = wire.rate_limited(api_version, state.retry_after_s)
    elif triggers.server_failed(state.name) or state.fail_status == 500:
        error = wire.server_error()
    if error is None:
        allowance = body.get("max_completion_tokens") or body.get("max_tokens")
        state.consume(
            plan.prompt_tokens + (allowance if isinstance(allowance, int) else plan.completion_tokens)
        )
    if plan.stream and error is None:
        frames = azure_stream(
            plan,
            encoding_for(model),
            first_chunk_delay_s=state.first_chunk_delay_s,
            chunk_delay_s=state.chunk_delay_s,
        )
        return EventStreamResponse(
            frames, start_delay_s=triggers.slow_ms / 1000, on_end=state.record_stream_end
        )
    if triggers.slow_ms:
        await asyncio.sleep(triggers.slow_ms / 1000)
    if error is not None:
        return error_response(error)
    return JSONResponse(wire.completion(plan, encoding_for(model)))
