"""Call Azure OpenAI (chat completions on either surface, the Responses API on v1) and translate its failures
into chatgate's error tree.

Chat completions go where the upstream's `api_version` says: "v1" -> `{endpoint}/openai/v1/chat/completions`
with the deployment name in the body's `model`; a dated version -> `{endpoint}/openai/deployments/{d}/
chat/completions?api-version=...`. The Responses API exists on v1 only (every resource serves it):
`{endpoint}/openai/v1/responses[/{id}[/input_items]]`; embeddings too, on v1 only
(`{endpoint}/openai/v1/embeddings`, the deployment in `model`). The key always goes in the `api-key` header.

One HTTP client (chatgate.upstream.transport) is shared by every request of an instance (pooling,
keep-alive); its
timeouts are explicit: connecting fails fast, reading waits long enough for reasoning models.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import quote

import httpx
from httpx_sse import EventSource, ServerSentEvent

from chatgate.errors import (
    ChatgateError,
    NotFound,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
)
from chatgate.gateway.ownership import response_not_found
from chatgate.observability import observation as observability
from chatgate.upstream.config import AzureResource, UpstreamTarget
from chatgate.upstream.cooldown import FAILING, THROTTLED, retry_in
from chatgate.upstream.transport import HttpClient

# Azure's own id of a request (API Management's), logged and traced with chatgate's request id.
UPSTREAM_REQUEST_ID = "apim-request-id"
# Azure's response headers worth passing on to the client.
_RETRY_HEADERS = ("retry-after", "retry-after-ms")


@dataclass(frozen=True, slots=True)
class Completion:
    """A successful non-streaming answer: the body exactly as Azure sent it, and its usage."""

    content: bytes
    usage: dict[str, Any] | None
    upstream_request_id: str | None


def chat_completions_url(target: UpstreamTarget) -> str:
    if target.resource.v1:
        return f"{target.resource.endpoint}/openai/v1/chat/completions"
    deployment = quote(target.deployment, safe="")
    return f"{target.resource.endpoint}/openai/deployments/{deployment}/chat/completions"


def responses_url(resource: AzureResource, response_id: str | None = None, suffix: str = "") -> str:
    """`/openai/v1/responses`, `.../{id}` or `.../{id}/input_items` on the resource's v1 surface."""
    url = f"{resource.endpoint}/openai/v1/responses"
    return url if response_id is None else f"{url}/{quote(response_id, safe='')}{suffix}"


def embeddings_url(resource: AzureResource) -> str:
    return f"{resource.endpoint}/openai/v1/embeddings"


class StoredResponseCall(NamedTuple):
    """Which stored response a GET / DELETE / input_items call is about, and on whose resource."""

    region: str
    resource: AzureResource
    response_id: str
    byok_workspace: str | None = None


class AzureOpenAI:
    """The Azure OpenAI data-plane client (chat completions)."""

    def __init__(self, http: HttpClient) -> None:
        self._http = http
        self._urls: dict[tuple[str, str, str], httpx.URL] = {}

    def _url(self, target: UpstreamTarget) -> httpx.URL:
        """The deployment's URL, parsed once per instance (httpx's URL parsing is ~60 us a request)."""
        key = (target.resource.endpoint, target.deployment, target.resource.api_version)
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) > 1000:
                self._urls.clear()
            params = {} if target.resource.v1 else {"api-version": target.resource.api_version}
            url = self._urls[key] = httpx.URL(chat_completions_url(target), params=params)
        return url

    def _request(
        self, target: UpstreamTarget, body: dict[str, Any], url: httpx.URL | str | None = None
    ) -> httpx.Request:
        if url is not None or target.resource.v1:
            body = {**body, "model": target.deployment}  # v1: the deployment is named in the body
        return self._http.build_request(
            "POST",
            self._url(target) if url is None else url,
            headers={"api-key": target.resource.api_key, "content-type": "application/json"},
            content=json.dumps(body, separators=(",", ":")).encode(),
        )

    async def complete(self, target: UpstreamTarget, body: dict[str, Any]) -> Completion:
        """POST a non-streaming chat completion; return Azure's body or raise a ChatgateError."""
        return await self._send_json(target, self._request(target, body))

    async def create_response(self, target: UpstreamTarget, body: dict[str, Any]) -> Completion:
        """POST a non-streaming Responses API request (v1); Azure's body, its `usage`, or a ChatgateError."""
        return await self._send_json(target, self._request(target, body, responses_url(target.resource)))

    async def create_embeddings(self, target: UpstreamTarget, body: dict[str, Any]) -> Completion:
        """POST an embeddings request (v1); Azure's body, its `usage`, or a ChatgateError. A large answer's
        usage is read from its tail (`_tail_usage`) rather than by parsing megabytes of vectors."""
        request = self._request(target, body, embeddings_url(target.resource))
        return await self._send_json(target, request, usage_last=True)

    async def open_response_stream(self, target: UpstreamTarget, body: dict[str, Any]) -> UpstreamStream:
        """POST a streaming Responses API request (v1); errors before the first byte are raised here."""
        return await self._open(target, self._request(target, body, responses_url(target.resource)))

    async def stored_response(
        self,
        call: StoredResponseCall,
        method: str,
        suffix: str = "",
        params: list[tuple[str, str]] | None = None,
    ) -> bytes:
        """GET or DELETE `/responses/{id}` (or GET `.../input_items` with `suffix`); Azure's JSON body."""
        request = self._http.build_request(
            method,
            responses_url(call.resource, call.response_id, suffix),
            params=httpx.QueryParams([(name, value) for name, value in params or ()]),
            headers={"api-key": call.resource.api_key},
        )
        try:
            response = await self._http.send(request)
        except TRANSPORT_FAILURES as exc:
            raise transport_error(exc) from None
        if response.status_code >= 300:
            target = UpstreamTarget(call.region, "", call.resource, "", call.byok_workspace)
            raise status_error(
                target,
                response.status_code,
                response.content,
                response.headers,
                not_found=response_not_found(call.response_id),
            )
        _readable(response.content)
        return response.content

    async def _send_json(
        self, target: UpstreamTarget, request: httpx.Request, *, usage_last: bool = False
    ) -> Completion:
        observation = observability.current()
        observation.upstream_started(stream=False)
        try:
            response = await self._http.send(request)
        except TRANSPORT_FAILURES as exc:
            observation.upstream_answered(None)
            raise transport_error(exc) from None
        observation.upstream_answered(response.headers.get(UPSTREAM_REQUEST_ID))
        if response.status_code >= 300:
            raise status_error(target, response.status_code, response.content, response.headers)
        usage = _tail_usage(response.content) if usage_last else None
        if usage is None:
            usage = _readable(response.content).get("usage")
        return Completion(
            content=response.content,
            usage=usage if isinstance(usage, dict) else None,
            upstream_request_id=response.headers.get(UPSTREAM_REQUEST_ID),
        )

    async def open_stream(self, target: UpstreamTarget, body: dict[str, Any]) -> UpstreamStream:
        """POST a streaming request and wait for Azure's status line: errors before the first byte are
        raised here (so the client gets a proper HTTP error); a 2xx returns the open stream."""
        return await self._open(target, self._request(target, body))

    async def _open(self, target: UpstreamTarget, request: httpx.Request) -> UpstreamStream:
        observation = observability.current()
        observation.upstream_started(stream=True)
        try:
            response = await self._http.send(request, stream=True)
        except TRANSPORT_FAILURES as exc:
            observation.upstream_answered(None)
            raise transport_error(exc) from None
        observation.upstream_answered(response.headers.get(UPSTREAM_REQUEST_ID))
        if response.status_code >= 300:
            try:
                content = await response.aread()
            except httpx.HTTPError as exc:
                raise transport_error(exc) from None
            finally:
                await response.aclose()
            raise status_error(target, response.status_code, content, response.headers)
        return UpstreamStream(response)


class UpstreamStream:
    """An open Azure event stream: its server-sent events as they arrive (parsed per the SSE spec by
    httpx-sse: multi-line `data:`, comments, `event:` lines, CRLF); `aclose()` cancels the request."""

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.upstream_request_id = response.headers.get("apim-request-id")

    async def events(self) -> AsyncIterator[ServerSentEvent]:
        """Each event, as it arrives, until the upstream closes the stream. Transport failures are raised
        as ChatgateErrors (the caller turns them into the API's error frame)."""
        try:
            async for event in EventSource(self._response).aiter_sse():
                yield event
        except httpx.TimeoutException:
            raise UpstreamTimeout("The upstream stopped sending the response in time.") from None
        except httpx.HTTPError:
            raise UpstreamError("The upstream connection failed while streaming the response.") from None

    async def aclose(self) -> None:
        await self._response.aclose()


# What sending can raise when the connection fails: httpx's errors, and what leaks from the layers below it
# when Azure (or whatever is at the endpoint) resets the connection at connect time: anyio then raises
# AttributeError on a socket that is already gone (tests/component/test_faults.py resets connections).
def _readable(content: bytes) -> dict[str, Any]:
    """Azure's JSON object, or a 502: a body that is not one (an HTML error page from a proxy, say) is
    never passed on as if it were the API's answer."""
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise UpstreamError("The upstream returned a response chatgate could not read.")
    return parsed


TRANSPORT_FAILURES: tuple[type[Exception], ...] = (httpx.HTTPError, OSError, AttributeError)

# Answers above this size are not parsed whole to find their usage: an embeddings answer of float vectors
# is about 19 KB an input (1,536 dimensions), and json.loads holds the event loop 574 ms for 512 such
# inputs (9.8 MB) and 2.45 s for 2,048 (39 MB); reading the usage from the tail takes 76 us (medians of 3).
_PARSE_WHOLE_BYTES = 256 * 1024
_TAIL_BYTES = 4096


def _tail_usage(content: bytes) -> dict[str, Any] | None:
    """The `usage` object of a large JSON object whose last member it is (OpenAI's and Azure's embeddings
    answers: `{"object", "data", "model", "usage"}`), read from the body's last bytes; None for a small
    body, or when usage is not the last member of an object (the caller then parses the whole body)."""
    if len(content) <= _PARSE_WHOLE_BYTES or content[:64].lstrip()[:1] != b"{":
        return None
    tail = content[-_TAIL_BYTES:]
    key = tail.rfind(b'"usage"')
    colon = tail.find(b":", key + 7) if key >= 0 else -1
    if colon < 0 or tail[key + 7 : colon].strip():
        return None
    try:
        text = tail[colon + 1 :].decode()
        usage, end = json.JSONDecoder().raw_decode(text, len(text) - len(text.lstrip()))
    except ValueError:  # UnicodeDecodeError included
        return None
    if not isinstance(usage, dict) or text[end:].strip() != "}":
        return None
    return usage


def transport_error(exc: Exception) -> ChatgateError:
    """A failure to talk to Azure: timeouts are 504, everything else 502. A refused connection or a connect
    timeout (nothing reached Azure) may be tried on another resource of the pool; a read timeout may not
    (Azure may be working on it, and billing it)."""
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.ConnectTimeout):
        error: ChatgateError = UpstreamTimeout("The upstream did not respond in time. Please retry.")
        error.upstream_status = "timeout"
        return error
    if isinstance(exc, httpx.LocalProtocolError):  # the transport refused a header (CR, LF or NUL): not sent
        error = UpstreamError(
            "chatgate refused to send the request upstream: a configured header value is malformed. "
            "Contact your administrator.",
            code="upstream_request_refused",
        )
        error.upstream_status = "refused_locally"
        return error
    error = UpstreamError("The upstream could not be reached. Please retry.")
    if isinstance(exc, httpx.ConnectTimeout):
        error.failover, error.upstream_status = FAILING, "connect_timeout"
    elif isinstance(exc, httpx.ConnectError | OSError | AttributeError):
        error.failover, error.upstream_status = FAILING, "unreachable"
    else:
        error.upstream_status = "broken"
    return error


def _error_object(content: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(content)
    except ValueError:
        return {}
    error = parsed.get("error") if isinstance(parsed, dict) else None
    return error if isinstance(error, dict) else {}


def status_error(
    target: UpstreamTarget,
    status: int,
    content: bytes,
    headers: httpx.Headers,
    *,
    not_found: ChatgateError | None = None,
) -> ChatgateError:
    """Map Azure's error status and body to what the client sees (the contract's "Errors" section), marked
    for the pool (upstream/pool.py): a 429 or a 500/502/503/504 may be tried on another resource."""
    mapped = _status_error(target, status, content, headers, not_found)
    mapped.upstream_status = status
    if status == 429:
        mapped.failover, mapped.retry_in = THROTTLED, retry_in(headers)
    elif status in _FAILOVER_STATUSES:
        mapped.failover = FAILING
    return mapped


_FAILOVER_STATUSES = frozenset({500, 502, 503, 504})


def _status_error(
    target: UpstreamTarget,
    status: int,
    content: bytes,
    headers: httpx.Headers,
    not_found: ChatgateError | None,
) -> ChatgateError:
    error = _error_object(content)
    message = error.get("message") if isinstance(error.get("message"), str) else None
    code = error.get("code") if isinstance(error.get("code"), str) else None
    if status >= 500:
        return UpstreamError(f"The upstream failed with status {status}. Please retry.")
    if status in (401, 403):
        # The stored Azure credentials were refused: an operator problem, not the caller's key.
        if target.byok_workspace is not None:
            return UpstreamError(
                f"The Azure OpenAI resource of workspace '{target.byok_workspace}' (bring-your-own-keys) "
                "refused its stored credentials. Contact your administrator."
            )
        return UpstreamError("The upstream refused chatgate's credentials. Contact your administrator.")
    if status == 404 and not_found is not None:
        return not_found
    if status == 404:
        where = (
            f"the Azure OpenAI resource of workspace '{target.byok_workspace}'"
            if target.byok_workspace is not None
            else "the upstream resource"
        )
        return NotFound(
            f"The model `{target.model}` is not deployed on {where} for region '{target.region}'.",
            param="model",
            code="model_not_found",
        )
    if status == 408:
        return UpstreamTimeout("The upstream did not respond in time. Please retry.")
    if status == 429:
        retry = {name: headers[name] for name in _RETRY_HEADERS if name in headers}
        return UpstreamRejected(
            429,
            message or "The upstream is rate limiting requests. Please retry later.",
            error_type="upstream_rate_limit",
            param=None,
            code="rate_limit_exceeded",
            headers=retry,
        )
    extra = {k: v for k, v in error.items() if k not in ("message", "type", "param", "code")}
    param = error.get("param")
    return UpstreamRejected(
        status if 400 <= status < 500 else 502,
        message or f"The upstream rejected the request with status {status}.",
        error_type="invalid_request_error",
        param=param if isinstance(param, str) else None,
        code=code,
        extra=extra,
    )
