"""POST /openai/{region}/v1/chat/completions: the Chat Completions adapter on the one pipeline.

region -> key (dependencies.entered) -> validate -> upstream -> reserve -> call -> relay -> settle
(chatgate.gateway.pipeline)
"""

from __future__ import annotations

from fastapi import Request, Response

from chatgate.gateway import pipeline
from chatgate.gateway.apis.chat_completions import CHAT_COMPLETIONS
from chatgate.gateway.dependencies import entered


async def chat_completions(request: Request) -> Response:
    region, caller, services = await entered(request)
    return await pipeline.run(CHAT_COMPLETIONS, region, caller, request, services)
