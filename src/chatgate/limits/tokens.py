"""Prompt token counting for rate limiting: exact tokenizer, OpenAI's published chat overhead formula.

The tokenizers (tokenizer.py) are tiktoken's Rust BPE with the o200k_base and cl100k_base vocabularies
shipped with chatgate: nothing is downloaded at run time. Short prompts are counted before tiktoken is
built, straight from the compiled vocabulary; larger ones with tiktoken, built off the event loop when a
request first needs it (`count_async`). Counting costs time linear in the text's length (pathological
runs included) and tiktoken releases the GIL, so `count_prompt_tokens_async` counts large bodies in a
worker thread.

The message formula is the one in OpenAI's cookbook "How to count tokens with tiktoken" (3 tokens per
message, 1 per name, 3 to prime the reply; functions: 7/10 per function, 3 per property, ...), which the
cookbook checks against the API's own `usage.prompt_tokens`. Parts it does not cover (images, tool calls in
assistant messages, nested parameter schemas) are estimated as documented below; the reservation is
corrected to the real usage after the response anyway.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

from chatgate.limits import tokenizer
from chatgate.limits.tokenizer import CL100K, O200K, Encoding

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

# Model name prefixes, longest first. tiktoken's own table is not used: it is a download-era registry
# that must know every model name (and maps unknown ones to nothing).
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
    ("text-embedding", CL100K),  # text-embedding-3-small / -large, text-embedding-ada-002
)
# Unknown names (a BYOK workspace's own deployments) use the newest encoding.
_DEFAULT_ENCODING = O200K

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
TOKENS_PER_TOOL_CALL = 3  # estimate: the cookbook does not cover assistant tool calls
IMAGE_LOW_DETAIL = 85  # OpenAI's figure for detail "low"
IMAGE_DEFAULT = 765  # size unknown without downloading it: a 1024x1024 image at high detail (85 + 4 x 170)


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


def encoding_for(model: str) -> Encoding:
    """The model's tiktoken encoding, built once per process (blocking on the first call of a family)."""
    return tokenizer.load(encoding_name_for(model))


def preload(models: tuple[str, ...] | list[str] | None = None) -> None:
    """Build the tiktoken encodings of `models` (default: both) now. Blocking; the gateway does not call
    it (each family loads when first needed), tools and benchmarks may."""
    names = {encoding_name_for(m) for m in models} if models else {O200K, CL100K}
    for name in sorted(names):
        tokenizer.load(name)


def count_text(encoding: Encoding, text: str, *, stop_above: int | None = None) -> int:
    """Tokens of plain text; special-token strings count as ordinary text, as the API does for content.
    Linear in the text's length: exact, except inside long stretches without a space (tokenizer.py)."""
    return tokenizer.count(encoding, text, stop_above=stop_above) if text else 0


# Bodies up to this size are counted on the event loop (well under a millisecond with tiktoken); larger
# ones in a worker thread: tiktoken releases the GIL while it encodes, so other requests keep being served.
INLINE_COUNT_BYTES = 8_192
# Until tiktoken is built (0.33 s of CPU, on the first text that needs it, or once counting without it
# has cost as much), bodies up to this size are counted by tokenizer.SmallTextBpe: exact, about 1.5
# microseconds a byte (less for pre-tokens it has met before), and ready as soon as its table is opened.
SMALL_TEXT_BYTES = 2_048


class Counter(Protocol[T_contra]):
    def __call__(self, model: str, what: T_contra, /, *, encoding: Encoding | None = None) -> int: ...


async def count_async(model: str, count: Counter[T], what: T, size: int) -> int:
    """`count(model, what)` without blocking the event loop: tiktoken is built off the loop, and when
    `what` is larger than INLINE_COUNT_BYTES (`size`) it is counted in a worker thread. A small `what` on
    an instance that has not built tiktoken yet is counted without it. Every offline count on
    the request path goes through here (prompts of each API, relayed completions)."""
    name = encoding_name_for(model)
    small = tokenizer.small_text_counter(name) if size <= SMALL_TEXT_BYTES else None
    if small is not None:
        try:
            return count(model, what, encoding=small)
        except tokenizer.NeedsTiktoken:
            pass  # text the small counter does not take: tiktoken counts it
    encoding = await tokenizer.load_async(name)
    if size <= INLINE_COUNT_BYTES:
        return count(model, what, encoding=encoding)
    return await asyncio.to_thread(partial(count, model, what, encoding=encoding))


async def count_prompt_tokens_async(
    model: str, body: dict[str, Any], body_size: int, *, stop_above: int | None = None
) -> int:
    """`count_prompt_tokens` without blocking the event loop (count_async)."""
    return await count_async(model, partial(count_prompt_tokens, stop_above=stop_above), body, body_size)


def count_model_text(model: str, text: str, *, encoding: Encoding | None = None) -> int:
    """Tokens of plain text with the model's encoding."""
    return count_text(encoding or encoding_for(model), text)


def count_prompt_tokens(
    model: str, body: dict[str, Any], *, stop_above: int | None = None, encoding: Encoding | None = None
) -> int:
    """Prompt tokens of a chat completions request body: messages plus tools / functions definitions.
    With `stop_above` (say the caller's token limit: a larger prompt is refused whatever its exact size),
    counting may stop once the count passes it; the result is then more than `stop_above`."""
    encoding = encoding or encoding_for(model)
    total = REPLY_PRIMING
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            remaining = None if stop_above is None else stop_above - total
            total += _count_message(encoding, message, remaining)
            if stop_above is not None and total > stop_above:
                return total
    tools = body.get("tools") or ()
    functions = [t.get("function") for t in tools if isinstance(t, dict)]
    functions += list(body.get("functions") or ())
    return total + count_function_definitions(encoding, [f for f in functions if isinstance(f, dict)])


def count_function_definitions(encoding: Encoding, definitions: list[dict[str, Any]]) -> int:
    """Function definitions ({name, description, parameters}) with the cookbook's overheads; 0 for none."""
    if not definitions:
        return 0
    overhead = _FUNCTION_OVERHEAD[encoding.name]
    return sum(_count_function(encoding, f, overhead) for f in definitions) + overhead.func_end


def usage_count(value: Any) -> int | None:
    """A token count as an upstream `usage` object states it (a non-negative integer), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one finished request used, and where the numbers come from: Azure's `usage` ("azure"), or
    chatgate's own count of the prompt and of the text streamed before a failure or disconnect ("counted")."""

    prompt_tokens: int
    completion_tokens: int
    source: Literal["azure", "counted"]
    # The name of the pool's resource that answered (upstream pools), when one did.
    resource: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _count_message(encoding: Encoding, message: dict[str, Any], stop_above: int | None = None) -> int:
    total = TOKENS_PER_MESSAGE
    for key, value in message.items():
        if key == "content":
            total += _count_content(encoding, value, stop_above)
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


def _count_content(encoding: Encoding, content: Any, stop_above: int | None = None) -> int:
    if isinstance(content, str):
        return count_text(encoding, content, stop_above=stop_above)
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
