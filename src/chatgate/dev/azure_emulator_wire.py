"""Azure OpenAI's wire format (chat completions, both surfaces): error bodies, completions, stream chunks."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from chatgate.dev.azure_emulator_reply import Encoding, ReplyPlan, logprobs_content

_SAFE = {"filtered": False, "severity": "safe"}
CONTENT_FILTER_DOCS = "https://go.microsoft.com/fwlink/?linkid=2198766"


class AzureError(NamedTuple):
    """An error response: status, JSON body and extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def resource_not_found() -> AzureError:
    """Unknown path or missing api-version."""
    return AzureError(404, {"error": {"code": "404", "message": "Resource not found"}}, {})


def access_denied() -> AzureError:
    """Missing or wrong api-key."""
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid "
        "key for an active subscription and use a correct regional API endpoint for your resource."
    )
    return AzureError(401, {"error": {"code": "401", "message": message}}, {})


def deployment_not_found() -> AzureError:
    """A deployment name the resource does not have."""
    message = (
        "The API deployment for this resource does not exist. If you created the deployment within the "
        "last 5 minutes, please wait a moment and try again."
    )
    return AzureError(404, {"error": {"code": "DeploymentNotFound", "message": message}}, {})


def invalid_json() -> AzureError:
    """A body that is not a JSON object."""
    message = (
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
        "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid "
        "JSON. If you have trouble figuring out how to fix this, please contact us through our help center "
        "at help.openai.com.)"
    )
    return AzureError(400, _invalid_request(message, None), {})


def invalid_request(message: str, param: str | None, status: int = 400) -> AzureError:
    """A request OpenAI's validation rejects."""
    return AzureError(status, _invalid_request(message, param), {})


def _invalid_request(message: str, param: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def content_filtered() -> AzureError:
    """The prompt tripped Azure's content management policy."""
    message = (
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy. "
        "Please modify your prompt and retry. To learn more about our content filtering policies please read "
        f"our documentation: {CONTENT_FILTER_DOCS}"
    )
    result = {
        "hate": {"filtered": True, "severity": "high"},
        "jailbreak": {"filtered": False, "detected": False},
        "self_harm": dict(_SAFE),
        "sexual": dict(_SAFE),
        "violence": dict(_SAFE),
    }
    error = {
        "message": message,
        "type": None,
        "param": "prompt",
        "code": "content_filter",
        "status": 400,
        "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": result},
    }
    return AzureError(400, {"error": error}, {})


def api_version_not_supported() -> AzureError:
    """A dated api-version on the v1 surface."""
    return AzureError(400, {"error": {"code": "BadRequest", "message": "API version not supported"}}, {})


def rate_limited(
    api_version: str, retry_after_s: int = 7, operation: str = "ChatCompletions_Create"
) -> AzureError:
    """Azure's token-rate-limit 429 with its retry headers."""
    message = (
        f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} have "
        "exceeded token rate limit of your current OpenAI S0 pricing tier. "
        f"Please retry after {retry_after_s} seconds."
    )
    headers = {"retry-after": str(retry_after_s), "retry-after-ms": str(retry_after_s * 1000)}
    return AzureError(429, {"error": {"code": "429", "message": message}}, headers)


def server_error() -> AzureError:
    """Azure's generic 500."""
    message = "The server had an error while processing your request. Sorry about that!"
    return AzureError(500, {"error": {"code": "InternalServerError", "message": message}}, {})


STREAM_ERROR: dict[str, Any] = {
    "error": {
        "code": "InternalServerError",
        "message": "The server had an error while processing your request.",
    }
}


def choice_filter_results() -> dict[str, Any]:
    """Content-filter annotations of a choice: all clear."""
    return {key: dict(_SAFE) for key in ("hate", "self_harm", "sexual", "violence")}


def prompt_filter_results() -> list[dict[str, Any]]:
    """Content-filter annotations of the prompt: all clear."""
    results = choice_filter_results()
    results["jailbreak"] = {"filtered": False, "detected": False}
    return [{"prompt_index": 0, "content_filter_results": dict(sorted(results.items()))}]


def usage(plan: ReplyPlan) -> dict[str, Any]:
    """The `usage` object, with the detail objects of the 2024-10-21 API."""
    return {
        "completion_tokens": plan.completion_tokens,
        "completion_tokens_details": {
            "accepted_prediction_tokens": 0,
            "audio_tokens": 0,
            "reasoning_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
        "prompt_tokens": plan.prompt_tokens,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": 0},
        "total_tokens": plan.prompt_tokens + plan.completion_tokens,
    }


def completion(plan: ReplyPlan, encoding: Encoding) -> dict[str, Any]:
    """A non-streamed `chat.completion` object."""
    message: dict[str, Any] = {"content": plan.content, "refusal": None, "role": "assistant"}
    if plan.tool_calls is not None:
        message["tool_calls"] = plan.tool_calls
    if plan.function_call is not None:
        message["function_call"] = plan.function_call
    logprobs = None
    if plan.logprobs and plan.content is not None:
        tokens = encoding.encode_ordinary(plan.content)
        logprobs = {"content": logprobs_content(encoding, tokens, plan.top_logprobs), "refusal": None}
    choice = {
        "content_filter_results": choice_filter_results(),
        "finish_reason": plan.finish_reason,
        "index": 0,
        "logprobs": logprobs,
        "message": message,
    }
    return {
        "choices": [choice],
        "created": plan.created,
        "id": plan.completion_id,
        "model": plan.model,
        "object": "chat.completion",
        "prompt_filter_results": prompt_filter_results(),
        "system_fingerprint": plan.system_fingerprint,
        "usage": usage(plan),
    }


def prompt_filter_event(plan: ReplyPlan) -> dict[str, Any]:
    """The first event of an Azure stream: prompt annotations, everything else empty."""
    event: dict[str, Any] = {
        "choices": [],
        "created": 0,
        "id": "",
        "model": "",
        "object": "",
        "prompt_filter_results": prompt_filter_results(),
    }
    if plan.include_usage:
        event["usage"] = None
    return event


def chunk(
    plan: ReplyPlan,
    delta: dict[str, Any],
    *,
    finish_reason: str | None = None,
    filter_results: dict[str, Any] | None = None,
    logprobs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` with a single choice."""
    choice = {
        "content_filter_results": {} if filter_results is None else filter_results,
        "delta": delta,
        "finish_reason": finish_reason,
        "index": 0,
        "logprobs": logprobs,
    }
    event = _chunk_envelope(plan, [choice])
    if plan.include_usage:
        event["usage"] = None
    return event


def usage_chunk(plan: ReplyPlan) -> dict[str, Any]:
    """The last chunk of a stream that asked for `stream_options.include_usage`."""
    event = _chunk_envelope(plan, [])
    event["usage"] = usage(plan)
    return event


def _chunk_envelope(plan: ReplyPlan, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "choices": choices,
        "created": plan.created,
        "id": plan.completion_id,
        "model": plan.model,
        "object": "chat.completion.chunk",
        "system_fingerprint": plan.system_fingerprint,
    }


def sse(event: dict[str, Any] | str) -> bytes:
    """Frame one server-sent event the way Azure does: `data: <json>` and a blank line."""
    data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"data: {data}\n\n".encode()
