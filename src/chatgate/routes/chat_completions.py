"""POST /openai/{region}/v1/chat/completions, read as the pipeline it runs:

region -> authenticate -> validate -> resolve upstream -> reserve rate limit -> call upstream
       -> respond (JSON, or a stream) -> reconcile usage and record it (after the response)
"""

from __future__ import annotations

import time

from fastapi import Request, Response
from starlette.background import BackgroundTask

from chatgate.dependencies import Caller, Region, ServicesDep, read_body
from chatgate.errors import ChatgateError
from chatgate.observability import observation_of
from chatgate.streaming import EventStreamResponse
from chatgate.tokens import actual_usage
from chatgate.usage import Accounting, prompt_tokens
from chatgate.validation import parse_body, validate_chat_request


async def chat_completions(
    region: Region, caller: Caller, request: Request, services: ServicesDep
) -> Response:
    observed = observation_of(request.scope)  # observability: facts for metrics, server-timing, trace
    observed.step("authenticate", observed.started)
    began = time.perf_counter()
    raw = await read_body(request, services.settings.max_body_bytes)
    chat = validate_chat_request(parse_body(raw))
    target = await services.upstreams.resolve(region, caller.workspace_id, chat.model)
    observed.identify(model=chat.model)  # allowed for this caller: safe as a metric dimension

    prompt = await prompt_tokens(chat.model, chat.forward, len(raw))
    allowance = chat.max_completion_tokens or services.settings.default_completion_reserve
    observed.step("validate", began)
    began = time.perf_counter()
    limits = await services.workspaces.limits(caller.workspace_id, chat.model)
    reservation = await services.limiter.reserve(caller.workspace_id, chat.model, prompt + allowance, limits)
    observed.step("reserve", began)
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
    # observability: the metrics line is written before the body ends, while the settlement below still
    # runs after it; give it the tokens the settlement will use (drop once settlement precedes the end).
    used = actual_usage(chat.model, prompt, completion.usage)
    observed.settled(used.prompt_tokens, used.completion_tokens, counted=used.source != "azure")
    return Response(
        completion.content,
        media_type="application/json",
        headers=headers,
        background=BackgroundTask(accounting.completed, completion.usage),
    )
