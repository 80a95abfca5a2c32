"""The Embeddings API as an adapter to the pipeline: `POST /v1/embeddings` (chatgate.gateway.pipeline does
the rest).

- body: embeddings_request.py checks `model`, `input` (the spec's four shapes and OpenAI's limits),
  `dimensions`, `encoding_format` and `user`, and forwards every other field;
- prompt: each input with the model's tokenizer (cl100k_base for the text-embedding models), token-id
  inputs as their length; no completion allowance is reserved (`reserves_completion = False`);
- upstream: Azure's embeddings on the v1 surface of the region's resource (deployment in `model`);
- usage: `usage.prompt_tokens` of the answer (or its `total_tokens`), all of it prompt;
- never streamed: the answer is one JSON body, relayed as Azure sent it (`float` or `base64` vectors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from chatgate.gateway.apis.base import Answer
from chatgate.gateway.body import parse_body
from chatgate.gateway.embeddings_request import (
    EmbeddingsRequest,
    count_input_tokens,
    validate_embeddings_request,
)
from chatgate.limits import tokens
from chatgate.limits.tokens import TokenUsage, usage_count

if TYPE_CHECKING:
    from chatgate.upstream.azure import AzureOpenAI
    from chatgate.upstream.config import UpstreamTarget


def usage_of(usage: Any) -> TokenUsage | None:
    """An embeddings `usage` object ({prompt_tokens, total_tokens}) as a TokenUsage: every token is input."""
    if not isinstance(usage, Mapping):
        return None
    prompt = usage_count(usage.get("prompt_tokens"))
    if prompt is None:
        prompt = usage_count(usage.get("total_tokens"))
    return TokenUsage(prompt, 0, "azure") if prompt is not None else None


class EmbeddingsApi:
    """The adapter the pipeline is handed for `POST /v1/embeddings`."""

    name = "embeddings"
    reserves_completion = False

    def parse(self, raw: bytes) -> EmbeddingsRequest:
        return replace(validate_embeddings_request(parse_body(raw)), body_size=len(raw))

    async def prompt_tokens(self, request: EmbeddingsRequest, *, stop_above: int | None = None) -> int:
        count = partial(count_input_tokens, stop_above=stop_above)
        return await tokens.count_async(request.model, count, request.inputs, request.body_size)

    async def complete(
        self, azure: AzureOpenAI, target: UpstreamTarget, request: EmbeddingsRequest
    ) -> Answer:
        answer = await azure.create_embeddings(target, request.forward)
        return Answer(answer.content, usage_of(answer.usage), answer.upstream_request_id)


EMBEDDINGS = EmbeddingsApi()
