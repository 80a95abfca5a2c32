"""The emulator's embeddings, on Azure's v1 surface (the deployment name in `model`):

    POST /openai/v1/embeddings -> {"object": "list", "model", "usage": {"prompt_tokens", "total_tokens"},
                                   "data": [{"object": "embedding", "index", "embedding"}, ...]}

Vectors are deterministic: each is drawn from a generator seeded by the model and the input (a string, or
its token ids), then scaled to unit length, as OpenAI's embeddings are; `dimensions` shortens them (the
text-embedding-3 models only, like Azure), `encoding_format: "base64"` sends each as the base64 of its
little-endian float32 values. Inputs are checked as OpenAI checks them (at most 2,048, none empty, at most
8,192 tokens each, 300,000 in all); the trigger markers of the chat emulator (`[[rate_limit]]`,
`[[server_error]]`, `[[slow:N]]`) work in any input string.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import math
import random
import struct
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatgate.dev import azure_emulator_wire as wire
from chatgate.dev.azure_emulator_http import admit_v1, error_response, v1_deployment
from chatgate.dev.azure_emulator_reply import encoding_for, parse_triggers

EMBEDDINGS_PATH = "/openai/v1/embeddings"

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000
# Native dimensions of the embedding models; `dimensions` may shorten those marked as shortenable.
NATIVE_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_SHORTENABLE = ("text-embedding-3",)
_DEFAULT_DIMENSIONS = 1536


def _inputs(value: Any) -> list[str | list[int]] | wire.AzureError:
    """The request's inputs, each a string or a list of token ids; Azure's 400 for anything else."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return wire.invalid_request("'input' must be a non-empty string or array.", "input")
    if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
        value = [value]  # one input given as token ids
    if len(value) > MAX_INPUTS:
        return wire.invalid_request(f"'input' must have at most {MAX_INPUTS} items.", "input")
    inputs: list[str | list[int]] = []
    for i, item in enumerate(value):
        tokens = isinstance(item, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in item)
        if not (isinstance(item, str) or tokens) or not item:
            return wire.invalid_request(
                f"'input[{i}]' must be a non-empty string or array of tokens.", "input"
            )
        inputs.append(item)
    return inputs


def _vector(model: str, item: str | list[int], dimensions: int) -> list[float]:
    """A deterministic unit vector for one input."""
    seed = hashlib.sha256(f"{model}\0{item!r}".encode()).digest()
    generator = random.Random(seed)  # noqa: S311 (deterministic test data, not a secret)
    values = [generator.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 8) for v in values]


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return vector


async def create_embeddings(request: Request) -> Response:
    """POST /openai/v1/embeddings."""
    state, body, refused = await admit_v1(request)
    if refused is not None:
        return refused
    deployment = v1_deployment(body)
    if isinstance(deployment, wire.AzureError):
        return error_response(deployment)
    model = state.model_for(deployment)
    if model is None:
        return error_response(wire.deployment_not_found())
    inputs = _inputs(body.get("input"))
    if isinstance(inputs, wire.AzureError):
        return error_response(inputs)
    error, dimensions = _dimensions(model, body.get("dimensions"))
    if error is not None:
        return error_response(error)
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        return error_response(
            wire.invalid_request("'encoding_format' must be one of 'float', 'base64'.", "encoding_format")
        )
    encoding = encoding_for(model)
    counts = [len(item) if isinstance(item, list) else len(encoding.encode_ordinary(item)) for item in inputs]
    for i, count in enumerate(counts):
        if count > MAX_INPUT_TOKENS:
            return error_response(
                wire.invalid_request(
                    f"This model's maximum context length is {MAX_INPUT_TOKENS} tokens, however you "
                    f"requested {count} tokens in input[{i}]. Please reduce your prompt.",
                    "input",
                )
            )
    if sum(counts) > MAX_REQUEST_TOKENS:
        return error_response(
            wire.invalid_request(
                f"Requested {sum(counts)} tokens, max {MAX_REQUEST_TOKENS} tokens per request.", "input"
            )
        )
    triggers = parse_triggers(" ".join(item for item in inputs if isinstance(item, str)))
    if triggers.slow_ms:
        await asyncio.sleep(triggers.slow_ms / 1000)
    if triggers.rate_limit:
        return error_response(wire.rate_limited("v1", operation="Embeddings_Create"))
    if triggers.server_error:
        return error_response(wire.server_error())
    state.consume(sum(counts))
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": _encoded(_vector(model, item, dimensions), encoding_format),
        }
        for i, item in enumerate(inputs)
    ]
    usage = {"prompt_tokens": sum(counts), "total_tokens": sum(counts)}
    return JSONResponse({"object": "list", "data": data, "model": model, "usage": usage})


def _dimensions(model: str, value: Any) -> tuple[wire.AzureError | None, int]:
    native = NATIVE_DIMENSIONS.get(model, _DEFAULT_DIMENSIONS)
    if value is None:
        return None, native
    if not model.startswith(_SHORTENABLE):
        return wire.invalid_request(
            "This model does not support specifying dimensions.", "dimensions"
        ), native
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= native:
        message = f"'dimensions' must be an integer between 1 and {native}."
        return wire.invalid_request(message, "dimensions"), native
    return None, value
