"""Reconcile: once a response has ended, correct the rate-limit reservation to the tokens really used.

One Accounting per admitted request. Whatever happens (a complete answer, an upstream failure, a stream
that completes, fails or loses its client) exactly one of its methods settles the reservation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chatgate import tokens
from chatgate.ratelimit import RateLimiter, Reservation
from chatgate.streaming import StreamOutcome

logger = logging.getLogger(__name__)

# Prompts larger than this are tokenized in a worker thread so the event loop keeps serving others.
_INLINE_TOKENIZE_BYTES = 16_384


async def prompt_tokens(model: str, body: dict[str, Any], body_size: int) -> int:
    """The request's prompt tokens, counted with the model's real tokenizer."""
    if body_size <= _INLINE_TOKENIZE_BYTES:
        return tokens.count_prompt_tokens(model, body)
    return await asyncio.to_thread(tokens.count_prompt_tokens, model, body)


@dataclass
class Accounting:
    """Settles one request's reservation with its actual usage."""

    limiter: RateLimiter
    reservation: Reservation
    model: str
    prompt_tokens: int

    async def completed(self, usage: Mapping[str, Any] | None) -> None:
        await self._settle(tokens.actual_tokens(self.model, self.prompt_tokens, usage))

    async def failed(self) -> None:
        """The upstream refused or failed before producing anything: no tokens were used."""
        await self._settle(0)

    async def stream_finished(self, outcome: StreamOutcome) -> None:
        used = tokens.actual_tokens(self.model, self.prompt_tokens, outcome.usage, outcome.completion_text)
        if outcome.status != "completed":
            logger.info("stream %s after %d chunks: %d tokens", outcome.status, outcome.chunks, used)
        await self._settle(used)

    async def _settle(self, used: int) -> None:
        await self.limiter.reconcile(self.reservation, used)
