"""Reconcile and record: once a response has ended, correct the rate-limit reservation to the tokens really
used, and add them to the workspace's usage record for the day and model.

One Accounting per admitted request. Whatever happens (a complete answer, an upstream failure, a stream
that completes, fails or loses its client) exactly one of its methods settles the request, with one
TokenUsage: the reservation is corrected to its total and the same numbers are added to the usage record,
so the two never disagree. Both writes happen after the response has been sent (a background task, or the
end of the stream), run concurrently, survive cancellation, and never raise: a failing write is logged.

Usage records are per workspace, model and UTC day (the day the request was admitted), added atomically
(DynamoDB `ADD`, stores/usage_dynamodb.py), and say how much of the usage chatgate had to count itself
because Azure's own `usage` never came (a stream that failed or whose client went away first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate import observability, tokens
from chatgate.background import BackgroundWrites
from chatgate.ratelimit import RateLimiter, Reservation
from chatgate.streaming import StreamOutcome
from chatgate.tokens import TokenUsage

logger = logging.getLogger(__name__)

# Prompts larger than this are tokenized in a worker thread so the event loop keeps serving others.
_INLINE_TOKENIZE_BYTES = 16_384


async def prompt_tokens(model: str, body: dict[str, Any], body_size: int) -> int:
    """The request's prompt tokens, counted with the model's real tokenizer."""
    if body_size <= _INLINE_TOKENIZE_BYTES:
        return tokens.count_prompt_tokens(model, body)
    return await asyncio.to_thread(tokens.count_prompt_tokens, model, body)


def utc_day(at: float | None = None) -> str:
    """The UTC day (YYYY-MM-DD) of a time, by default now."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if at is None else at))


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One workspace's usage of one model on one UTC day. The `counted_*` fields are the part of the
    totals that chatgate counted itself (Azure sent no usage); the rest is Azure's own `usage`."""

    workspace_id: str
    day: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    counted_requests: int = 0
    counted_prompt_tokens: int = 0
    counted_completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "model": self.model,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "counted_requests": self.counted_requests,
            "counted_prompt_tokens": self.counted_prompt_tokens,
            "counted_completion_tokens": self.counted_completion_tokens,
        }


class UsageStore(Protocol):
    """Where usage records live (DynamoDB in production: stores/usage_dynamodb.py)."""

    async def add(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        """Atomically add one request's usage to the (workspace, day, model) record, creating it."""
        ...


class UsageLedger:
    """Adds finished requests to the usage records. Never raises; a write in flight completes even if
    its caller is cancelled, and `drain()` waits for those still running (at shutdown, in tests)."""

    def __init__(self, store: UsageStore) -> None:
        self._store = store
        self._writes = BackgroundWrites()

    async def record(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        await self._writes.run(self._write(workspace_id, day, model, usage))

    async def drain(self) -> None:
        await self._writes.drain()

    async def _write(self, workspace_id: str, day: str, model: str, usage: TokenUsage) -> None:
        try:
            await self._store.add(workspace_id, day, model, usage)
        except Exception as exc:
            logger.error(
                "usage record failed for workspace %s model %s day %s (%d prompt + %d completion tokens, "
                "%s): %s",
                workspace_id,
                model,
                day,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.source,
                exc,
            )


@dataclass
class Accounting:
    """Settles one request: reconciles its reservation and records its usage, with the same numbers."""

    limiter: RateLimiter
    reservation: Reservation
    model: str
    prompt_tokens: int
    ledger: UsageLedger | None = None
    day: str = field(default_factory=utc_day)
    settled: bool = field(default=False, init=False)

    async def completed(self, usage: Mapping[str, Any] | None) -> None:
        await self._settle(tokens.actual_usage(self.model, self.prompt_tokens, usage))

    async def failed(self) -> None:
        """The upstream refused or failed before producing anything: no tokens were used, nothing to
        record."""
        await self._settle(None)

    async def stream_finished(self, outcome: StreamOutcome) -> None:
        used = tokens.actual_usage(self.model, self.prompt_tokens, outcome.usage, outcome.completion_text)
        if outcome.status != "completed":
            logger.info(
                "stream %s after %d chunks: %d tokens (%s)",
                outcome.status,
                outcome.chunks,
                used.total_tokens,
                used.source,
            )
        await self._settle(used)

    async def _settle(self, used: TokenUsage | None) -> None:
        if self.settled:
            logger.debug("request for workspace %s already settled", self.reservation.workspace_id)
            return
        self.settled = True
        began = time.perf_counter()
        observability.current().settled(  # observability: tokens of the metrics line and the trace
            used.prompt_tokens if used else 0,
            used.completion_tokens if used else 0,
            counted=used is not None and used.source != "azure",
        )
        writes = [self.limiter.reconcile(self.reservation, used.total_tokens if used else 0)]
        if used is not None and self.ledger is not None:
            writes.append(self.ledger.record(self.reservation.workspace_id, self.day, self.model, used))
        await asyncio.gather(*writes)
        observability.current().step("settle", began)
