"""What the Azure OpenAI emulator remembers: its settings, the requests it received, how streams ended."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

# Deployment name -> the versioned model Azure reports in `model` (used when `deployments` is None).
KNOWN_MODEL_VERSIONS: dict[str, str] = {
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "o4-mini": "o4-mini-2025-04-16",
    "o3-mini": "o3-mini-2025-01-31",
    "o1-preview": "o1-preview-2024-09-12",
    "gpt-4o": "gpt-4o-2024-05-13",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4": "gpt-4-0613",
    "gpt-35-turbo": "gpt-35-turbo-0125",
    # Azure reports embedding models without a version.
    "text-embedding-3-small": "text-embedding-3-small",
    "text-embedding-3-large": "text-embedding-3-large",
    "text-embedding-ada-002": "text-embedding-ada-002",
}

_RATE_WINDOW_S = 60.0


def versioned_model(deployment: str) -> str:
    """The versioned model name a deployment called `deployment` would report."""
    return KNOWN_MODEL_VERSIONS.get(deployment, f"{deployment}-2024-01-01")


class StreamEnd(Enum):
    """How a streamed response ended."""

    COMPLETED = "completed"  # [DONE] sent
    CANCELLED = "cancelled"  # the client went away first
    ERRORED = "errored"  # an injected error frame ended it
    RESET = "reset"  # an injected connection reset ended it


@dataclass
class RecordedRequest:
    """One request as the emulator received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON, or None when absent or malformed
    received_at: float = field(default_factory=time.time)


@dataclass
class StoredResponse:
    """A response Azure keeps: the response object, its input items, and the whole conversation so far
    (what a request naming it as `previous_response_id` continues)."""

    response: dict[str, Any]
    input_items: list[dict[str, Any]]
    conversation: list[dict[str, Any]]


@dataclass
class EmulatorState:
    """Configuration and recordings of one emulator; safe to read from other threads."""

    api_key: str = "emulator-key"
    deployments: dict[str, str] | None = None
    name: str = "emulator"
    chunk_delay_s: float = 0.0
    first_chunk_delay_s: float = 0.0
    region: str = "Sweden Central"
    requests_per_minute: int = 1_000
    tokens_per_minute: int = 150_000
    # Answer every request with Azure's 429 or 500 (a throttled or failing resource of a pool), and the
    # retry-after of its 429s (also of `[[rate_limit]]`).
    fail_status: int | None = None
    retry_after_s: int = 7
    requests: list[RecordedRequest] = field(default_factory=list)
    cancelled_streams: int = 0
    completed_streams: int = 0
    errored_streams: int = 0  # ended by [[stream_error_after:N]] or [[stream_reset_after:N]]
    stream_cancelled: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    stream_completed: threading.Event = field(default_factory=threading.Event, repr=False, compare=False)
    _changed: threading.Condition = field(
        default_factory=threading.Condition, init=False, repr=False, compare=False
    )
    _usage: deque[tuple[float, int]] = field(default_factory=deque, init=False, repr=False, compare=False)
    # Responses API: stored responses by id (`store` not false), as Azure keeps them for 30 days.
    _responses: dict[str, StoredResponse] = field(default_factory=dict, init=False, repr=False, compare=False)

    def model_for(self, deployment: str) -> str | None:
        """The versioned model behind `deployment`, or None when no such deployment exists."""
        if self.deployments is None:
            return versioned_model(deployment)
        return self.deployments.get(deployment)

    def record(self, request: RecordedRequest) -> None:
        """Remember a received request."""
        with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    def record_stream_end(self, end: StreamEnd) -> None:
        """Count how a stream ended and wake anyone waiting for it."""
        with self._changed:
            if end is StreamEnd.COMPLETED:
                self.completed_streams += 1
                self.stream_completed.set()
            elif end is StreamEnd.CANCELLED:
                self.cancelled_streams += 1
                self.stream_cancelled.set()
            else:
                self.errored_streams += 1
            self._changed.notify_all()

    def store_response(self, stored: StoredResponse) -> None:
        """Keep a created response for GET, DELETE, input_items and `previous_response_id`."""
        with self._changed:
            self._responses[stored.response["id"]] = stored

    def stored_response(self, response_id: str) -> StoredResponse | None:
        with self._changed:
            return self._responses.get(response_id)

    def delete_response(self, response_id: str) -> bool:
        """Forget a stored response; False when there was none."""
        with self._changed:
            return self._responses.pop(response_id, None) is not None

    def stored_response_ids(self) -> list[str]:
        with self._changed:
            return list(self._responses)

    def consume(self, tokens: int) -> None:
        """Charge one request of `tokens` tokens to the rate-limit window."""
        with self._changed:
            self._usage.append((time.monotonic(), tokens))

    def remaining(self) -> tuple[int, int]:
        """Requests and tokens left in the current minute (the x-ratelimit-remaining-* values)."""
        with self._changed:
            horizon = time.monotonic() - _RATE_WINDOW_S
            while self._usage and self._usage[0][0] < horizon:
                self._usage.popleft()
            used_tokens = sum(tokens for _, tokens in self._usage)
            return (
                max(0, self.requests_per_minute - len(self._usage)),
                max(0, self.tokens_per_minute - used_tokens),
            )

    def wait_for(self, predicate: Callable[[EmulatorState], bool], timeout: float = 5.0) -> bool:
        """Block (any thread) until `predicate(self)` holds; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def reset(self) -> None:
        """Forget recorded requests, stream counters and rate-limit usage; stop any pacing."""
        with self._changed:
            self.chunk_delay_s = self.first_chunk_delay_s = 0.0
            self.fail_status = None
            self.retry_after_s = 7
            self.requests.clear()
            self.cancelled_streams = self.completed_streams = self.errored_streams = 0
            self.stream_cancelled.clear()
            self.stream_completed.clear()
            self._usage.clear()
            self._responses.clear()
            self._changed.notify_all()
