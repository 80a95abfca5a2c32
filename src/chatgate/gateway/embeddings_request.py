"""The Embeddings API's request body as the gateway needs it, and its input tokens counted offline.

Checked (the contract's forwarding policy, "Embeddings"): `model` (required); `input` (required), in one of
the spec's four shapes: a string, an array of strings, an array of token ids, an array of token-id arrays,
with OpenAI's limits (at most 2,048 inputs; 8,192 tokens each and 300,000 in all, counted with the model's
tokenizer; a token-id input counts as its length); `dimensions` (a positive integer, `256.0` included);
`encoding_format` and `user` (strings: Azure judges the values). Every other field is forwarded as sent; the
Azure extensions of the denylist (checks.AZURE_EXTENSIONS) are refused. Embeddings are never streamed and
reserve no completion allowance: the prompt is the whole cost.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatgate.errors import InvalidRequest
from chatgate.gateway.checks import (
    as_int,
    denied,
    integer,
    is_int,
    kind_of,
    missing,
    string,
    type_error,
    value_error,
)
from chatgate.limits import tokens
from chatgate.limits.tokenizer import Encoding

MAX_INPUTS = 2048
MAX_INPUT_TOKENS = 8192
MAX_REQUEST_TOKENS = 300_000

Input = str | list[int]


@dataclass(frozen=True, slots=True)
class EmbeddingsRequest:
    """A checked `POST /v1/embeddings` body: its inputs, each a string or a list of token ids."""

    model: str
    inputs: tuple[Input, ...] = field(repr=False)
    forward: dict[str, Any] = field(repr=False)
    body_size: int = 0  # bytes of the raw body: large inputs are counted off the event loop
    stream: bool = False  # embeddings answer in one JSON body
    max_output_tokens: int | None = None  # nothing is generated: no completion allowance


def _model(value: Any) -> None:
    string("model", value, {})
    if not value:
        raise value_error("model", "expected a model name, but got an empty string instead.")


def _too_many(count: int) -> InvalidRequest:
    return value_error(
        "input",
        f"array too long. Expected an array with maximum length {MAX_INPUTS}, "
        f"but got an array with length {count} instead.",
        "array_above_max_length",
    )


def _token_ids(param: str, value: list[Any]) -> list[int]:
    for i, token in enumerate(value):
        if not is_int(token):
            raise type_error(f"{param}[{i}]", "an integer", token)
    return [as_int(token) for token in value]


def _inputs(value: Any) -> tuple[Input, ...]:
    """The spec's four shapes of `input`, as a tuple of strings and token-id lists."""
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list):
        raise type_error("input", "a string or an array", value)
    if not value:
        raise value_error(
            "input",
            "empty array. Expected an array with minimum length 1, but got an empty array instead.",
            "empty_array",
        )
    if len(value) > MAX_INPUTS:
        raise _too_many(len(value))
    first = value[0]
    if isinstance(first, str):
        for i, item in enumerate(value):
            string(f"input[{i}]", item, {})
        return tuple(value)
    if isinstance(first, list):
        inputs: list[Input] = []
        for i, item in enumerate(value):
            if not isinstance(item, list):
                raise type_error(f"input[{i}]", "an array of token ids", item)
            if not item:
                raise value_error(f"input[{i}]", "expected at least one token id, but got an empty array.")
            inputs.append(_token_ids(f"input[{i}]", item))
        return tuple(inputs)
    if is_int(first):
        return (_token_ids("input", value),)
    raise InvalidRequest(
        f"Invalid type for 'input[0]': expected a string, a token id or an array of token ids, "
        f"but got {kind_of(first)} instead.",
        param="input[0]",
        code="invalid_type",
    )


def validate_embeddings_request(body: Any) -> EmbeddingsRequest:
    """Check what the gateway relies on; return what to forward (nulls dropped, integers as integers)."""
    if not isinstance(body, dict):
        raise InvalidRequest(
            f"Invalid body: expected a JSON object, but got {kind_of(body)} instead.", code="invalid_type"
        )
    for name in ("input", "model"):
        if body.get(name) is None:
            raise missing(name)
    _model(body["model"])
    denied(body)
    inputs = _inputs(body["input"])
    if body.get("dimensions") is not None:
        integer(1)("dimensions", body["dimensions"], body)
    for name in ("encoding_format", "user"):
        if body.get(name) is not None:
            string(name, body[name], body)
    forward = {k: v for k, v in body.items() if v is not None}
    if "dimensions" in forward:
        forward["dimensions"] = as_int(forward["dimensions"])
    first = body["input"][0] if isinstance(body["input"], list) else None
    if isinstance(first, list):
        forward["input"] = list(inputs)  # token ids written 1.0 are sent as 1
    elif first is not None and not isinstance(first, str):
        forward["input"] = inputs[0]
    return EmbeddingsRequest(model=body["model"], inputs=inputs, forward=forward)


def count_input_tokens(
    model: str, inputs: Sequence[Input], *, stop_above: int | None = None, encoding: Encoding | None = None
) -> int:
    """Tokens of all inputs: each string with the model's tokenizer, each token-id list as its length.
    An input above 8,192 tokens, or inputs above 300,000 in all, are a 400 naming `input`. With
    `stop_above` (the caller's token limit), counting may stop once past it (the count returned is then
    above it, and the request is refused whatever its exact size)."""
    encoding = encoding or tokens.encoding_for(model)
    ceiling = MAX_REQUEST_TOKENS if stop_above is None else min(stop_above, MAX_REQUEST_TOKENS)
    total = 0
    for i, item in enumerate(inputs):
        if isinstance(item, list):
            count = len(item)
        else:
            count = tokens.count_text(encoding, item, stop_above=min(MAX_INPUT_TOKENS, ceiling - total))
        if count > MAX_INPUT_TOKENS:
            where = "input" if len(inputs) == 1 else f"input[{i}]"
            raise value_error(
                where,
                f"the input is longer than the model's maximum of {MAX_INPUT_TOKENS} tokens. "
                "Shorten or split it.",
                "context_length_exceeded",
            )
        total += count
        if total > ceiling:
            break
    if total > MAX_REQUEST_TOKENS:
        raise value_error(
            "input",
            f"the inputs hold more than {MAX_REQUEST_TOKENS} tokens in all, the most one request may embed. "
            "Split them over several requests.",
            "max_tokens_per_request",
        )
    return total
