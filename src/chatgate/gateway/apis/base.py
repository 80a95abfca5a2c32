"""The adapter interface: what the pipeline needs to know about one API.

An `Api` reads and validates a request body into an `ApiRequest`, counts its prompt tokens and calls the
upstream for a JSON answer; a `StreamingApi` also opens the upstream's event stream and makes a
`StreamRelay` for it. The pipeline (chatgate.gateway.pipeline) does everything else the same way for every
API.
An API whose answer is not generated text (embeddings) says so with `reserves_completion = False`: only its
prompt is reserved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from chatgate.errors import ChatgateError
from chatgate.limits.tokens import TokenUsage

if TYPE_CHECKING:
    from httpx_sse import ServerSentEvent

    from chatgate.upstream.azure import AzureOpenAI, UpstreamStream
    from chatgate.upstream.config import UpstreamRoute, UpstreamTarget


class ApiRequest(Protocol):
    """A validated request: what the pipeline needs to know about it."""

    @property
    def model(self) -> str: ...

    @property
    def stream(self) -> bool: ...

    @property
    def max_output_tokens(self) -> int | None:
        """The completion's explicit cap, if the request sets one (else the default allowance is
        reserved)."""
        ...


RequestT = TypeVar("RequestT", bound=ApiRequest)
RequestT_contra = TypeVar("RequestT_contra", bound=ApiRequest, contravariant=True)


@dataclass(frozen=True, slots=True)
class Answer:
    """A complete (non-streaming) answer: the body exactly as Azure sent it, and its usage."""

    content: bytes
    usage: TokenUsage | None
    upstream_request_id: str | None = None


class StreamRelay(Protocol):
    """One stream's framing and bookkeeping, for one API. The pipeline's relay loop hands it each upstream
    event and sends what it returns; it keeps the usage and the visible text for settlement."""

    usage: TokenUsage | None
    relayed_text: list[str]
    finished: bool  # the API's last event has been seen: stop reading

    def relay(self, event: ServerSentEvent) -> bytes | None:
        """The bytes to send the client for one upstream event (None: send nothing). An error event from
        the upstream raises a ChatgateError (the loop then ends the stream with `error_frame`)."""
        ...

    def end_frame(self) -> bytes:
        """The last bytes of a stream that completed (`data: [DONE]` for chat completions)."""
        ...

    def error_frame(self, error: ChatgateError) -> bytes:
        """The last bytes of a stream that failed after it started, in a shape the API's clients read."""
        ...


class Api(Protocol[RequestT]):
    """One API's adapter to the pipeline."""

    name: str
    # Whether the answer is generated tokens, for which an allowance is reserved (the request's
    # `max_output_tokens`, else the default); False (embeddings): the prompt is the whole cost.
    reserves_completion: bool

    def parse(self, raw: bytes) -> RequestT:
        """Read and validate a body (InvalidRequest on anything OpenAI would refuse)."""
        ...

    async def prompt_tokens(self, request: RequestT, *, stop_above: int | None = None) -> int:
        """The request's prompt tokens, counted offline with the model's tokenizer, off the event loop
        when the prompt is large. Counting may stop once past `stop_above` (the caller's token limit: a
        prompt that large is refused whatever its exact size), returning a count above it."""
        ...

    async def complete(self, azure: AzureOpenAI, target: UpstreamTarget, request: RequestT) -> Answer:
        """Call the upstream for a JSON answer (ChatgateError on failure)."""
        ...


class StreamingApi(Api[RequestT], Protocol[RequestT]):
    """An API whose requests may ask for a stream (`stream: true`). The requests of any other API never
    have `stream` true (the pipeline relies on it)."""

    async def open_stream(
        self, azure: AzureOpenAI, target: UpstreamTarget, request: RequestT
    ) -> UpstreamStream:
        """Open the upstream's event stream (ChatgateError on failure before its first byte)."""
        ...

    def stream_relay(self, request: RequestT) -> StreamRelay:
        """The relay for one of this API's streams."""
        ...


@runtime_checkable
class PinnedApi(Protocol):
    """An adapter some of whose requests may only go to one resource of the pool (the Responses API: a
    `previous_response_id` continues a conversation stored on the resource that created it). The pipeline
    calls `pin` before anything is reserved; an adapter without it may use any resource."""

    async def pin(self, route: UpstreamRoute, request: object) -> UpstreamRoute:
        """The route narrowed to the resources the request may use (a NotFound when none)."""
        ...
