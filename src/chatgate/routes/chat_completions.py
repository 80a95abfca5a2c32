"""POST /openai/{region}/v1/chat/completions: the Chat Completions adapter on the one pipeline.

region -> key (dependencies) -> validate -> upstream -> reserve -> call -> relay -> settle (chatgate.pipeline)
"""

from __future__ import annotations

from fastapi import Request, Response

from chatgate import pipeline
from chatgate.apis.chat_completions import CHAT_COMPLETIONS
from chatgate.dependencies import Caller, Region, ServicesDep


async def chat_completions(
    region: Region, caller: Caller, request: Request, services: ServicesDep
) -> Response:
    return await pipeline.run(CHAT_COMPLETIONS, region, caller, request, services)
