"""POST /openai/{region}/v1/embeddings: the Embeddings adapter on the one pipeline.

region -> key (dependencies.entered) -> validate -> upstream -> reserve -> call -> settle
(chatgate.gateway.pipeline)
"""

from __future__ import annotations

from fastapi import Request, Response

from chatgate.gateway import pipeline
from chatgate.gateway.apis.embeddings import EMBEDDINGS
from chatgate.gateway.dependencies import entered


async def create_embeddings(request: Request) -> Response:
    region, caller, services = await entered(request)
    return await pipeline.run(EMBEDDINGS, region, caller, request, services)
