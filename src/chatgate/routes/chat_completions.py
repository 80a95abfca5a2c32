"""POST /openai/{region}/v1/chat/completions, read as the pipeline it runs:

region -> authenticate -> validate -> resolve upstream -> reserve rate limit -> call upstream
       -> respond (JSON, or a stream) -> reconcile usage and record it (after the response)
"""

from __future__ import annotations

from fastapi import Request, Response
from starlette.background import BackgroundTask

from chatgate.dependencies import Caller, Region, ServicesDep, read_body
from chatgate.errors import ChatgateError
from chatgate.streaming import EventStreamResponse
from chatgate.usage import Accounting, prompt_tokens
from chatgate.validation import parse_body, validate_chat_request


async def chat_completions(
    region: Region, caller: Caller, request: Request, services: ServicesDep
) -> Response:
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
