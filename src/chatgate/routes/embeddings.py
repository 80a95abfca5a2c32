"""POST /openai/{region}/v1/embeddings: the Embeddings adapter on the one pipeline.

region -> key (dependencies.entered) -> validate -> upstream -> reserve -> call -> settle (chatgate.pipeline)
"""

from __future__ import annotations

from fastapi import Request, Response

from chatgate import pipeline
from chatgate.apis.embeddings import EMBEDDINGS
from chatgate.dependencies import entered


async def create_embeddings(request: Request) -> Response:
    region, caller, services = await entered(request)
    return await pipeline.run(EMBEDDINGS, region, caller, request, services)
