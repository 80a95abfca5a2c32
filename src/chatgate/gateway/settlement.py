"""Settle: the last step of every authenticated request, done before its response ends.

Lambda freezes the sandbox the moment a response ends (Lambda Web Adapter when the HTTP body ends, Mangum
when the handler returns): a write still pending then waits for the next invocation of that sandbox, or is
lost when the sandbox is retired. So each request is settled exactly once, before the last body message:

- its rate-limit reservation is corrected to what it is charged
(chatgate.limits.ratelimit.RateLimiter.reconcile:
  unused tokens back to the admitting window, tokens beyond the reservation to the window it ends in);
- the same numbers are added to the workspace's usage record for the day and model (chatgate.limits.usage);
- the key's last use is written, when due (chatgate.gateway.auth).

The writes run concurrently (one round trip), are shielded from cancellation (a client that goes away
cannot interrupt them), are retried within the settlement's time budget (stores/markers.py: each carries
the request's marker, so a retry applies it once), and never raise: writes that still did not settle are
written as one "unsettled" line (chatgate.limits.ledger) that `chatgate ledger replay` applies later, and
counted
in the request's metrics line. The pipeline calls exactly one of `completed`, `stream_ended` or
`abandoned`; later calls are ignored.

What a request is charged: Azure's own usage when it came. When it never came (the client went away, the
upstream failed mid-stream), the prompt chatgate counted plus the completion tokens of what was relayed —
and for models that spend hidden reasoning tokens before the first visible one (o-series, gpt-5 family), at
least the whole reservation, since Azure may have billed that much. The usage record marks that part as
counted by chatgate.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

from chatgate.gateway.auth import Authenticator, Principal
from chatgate.limits import tokens
from chatgate.limits.ledger import UnsettledWrite, log_unsettled
from chatgate.limits.ratelimit import RateLimiter, Reservation
from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import COMPLETIONS, UsageLedger
from chatgate.observability import observation as observability

logger = logging.getLogger(__name__)

# Models whose reasoning tokens are billed but never shown: o1, o3, o4-mini, ..., and the gpt-5 family.
_HIDDEN_REASONING = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)

StreamStatus = Literal["completed", "failed", "disconnected", "timed_out"]


def hides_reasoning(model: str) -> bool:
    """Whether a model spends hidden reasoning tokens (billed, never streamed)."""
    return _HIDDEN_REASONING.match(model) is not None


def utc_day(at: float | None = None) -> str:
    """The UTC day (YYYY-MM-DD) of a time, by default now."""
    return time.strftime("%Y-%m-%d", time.gmtime(time.time() if at is None else at))


@dataclass
class StreamOutcome:
    """How a stream ended and what is known of its usage: Azure's (normalised by the API's adapter) if it
    came, else the visible text relayed so far."""

    status: StreamStatus = "completed"
    usage: TokenUsage | None = None
    relayed_text: list[str] = field(default_factory=list)
    events: int = 0


async def counted_completion(model: str, text: Iterable[str]) -> int:
    """Completion tokens of the text relayed to the client, counted with the model's tokenizer."""
    joined = "".join(text)
    return await tokens.count_async(model, tokens.count_model_text, joined, len(joined)) if joined else 0


class Settlement:
    """Settles one authenticated request. Created right after authentication, told about the reservation
    once the request is admitted, and settled once, before the response ends."""

    def __init__(
        self,
        caller: Principal,
        *,
        authenticator: Authenticator,
        limiter: RateLimiter,
        ledger: UsageLedger | None,
        api: str = COMPLETIONS,
    ) -> None:
        self.caller = caller
        self.api = api  # the usage endpoint its record belongs to (chatgate.limits.usage.usage_api)
        self._authenticator = authenticator
        self._limiter = limiter
        self._ledger = ledger
        self.reservation: Reservation | None = None
        self.prompt_tokens = 0
        self.day = utc_day()
        self.settled = False
        self.resource: str | None = None  # the pool's resource that answered (upstream pools)

    @property
    def model(self) -> str:
        """The admitted request's model ("" before admission)."""
        return self.reservation.model if self.reservation is not None else ""

    def admitted(self, reservation: Reservation, prompt_tokens: int) -> None:
        """The request was admitted with this reservation and this counted prompt."""
        self.reservation = reservation
        self.prompt_tokens = prompt_tokens
        self.day = utc_day()

    async def completed(self, usage: TokenUsage | None) -> None:
        """A complete JSON answer: Azure's usage (if it sent none, the counted prompt is charged)."""
        await self._settle(usage or await self._counted(()))

    async def stream_ended(self, outcome: StreamOutcome) -> None:
        """A stream ended (completed, failed, timed out, or its client went away)."""
        used = outcome.usage or await self._counted(outcome.relayed_text)
        if outcome.status != "completed":
            logger.info(
                "stream %s after %d events: %d tokens charged (%s)",
                outcome.status,
                outcome.events,
                used.total_tokens,
                used.source,
            )
        await self._settle(used)

    async def abandoned(self) -> None:
        """The request ended before the upstream produced anything (refused, failed, or any error between
        authentication and the response): nothing was used; the reservation, if any, is released."""
        await self._settle(None)

    async def _counted(self, relayed_text: Iterable[str]) -> TokenUsage:
        """What to charge when Azure's usage never came."""
        completion = await counted_completion(self.model, relayed_text) if self.model else 0
        if self.reservation is not None and hides_reasoning(self.model):
            completion = max(completion, self.reservation.tokens - self.prompt_tokens)
        return TokenUsage(self.prompt_tokens, completion, "counted")

    async def _settle(self, used: TokenUsage | None) -> None:
        if self.settled:
            logger.debug("request of workspace %s already settled", self.caller.workspace_id)
            return
        self.settled = True
        began = time.perf_counter()
        observed = observability.current()  # the tokens of the metrics line and the trace
        if used is not None:
            observed.settled(used.prompt_tokens, used.completion_tokens, counted=used.source != "azure")
            if self.resource is not None:
                used = replace(used, resource=self.resource)
        touch = self._authenticator.record_use(self.caller)
        writes: list[Awaitable[list[UnsettledWrite]]] = []
        reservation = self.reservation
        if reservation is not None:
            writes.append(self._limiter.reconcile(reservation, used.total_tokens if used else 0))
            if used is not None and self._ledger is not None:
                writes.append(
                    self._ledger.record(
                        self.caller.workspace_id,
                        self.day,
                        self.model,
                        used,
                        marker=reservation.marker,
                        api=self.api,
                    )
                )
        if writes or touch is not None:
            # Each write is shielded and never raises; shield the gather too, so a cancelled caller still
            # waits for nothing less than all of them.
            results = await asyncio.shield(asyncio.gather(_touched(touch), *writes))
            unsettled = [write for result in results for write in result]
            if unsettled:
                log_unsettled(observed.request_id, self.caller.workspace_id, unsettled)
                observed.unsettled(len(unsettled))
        observed.step("settle", began)


async def _touched(touch: Awaitable[None] | None) -> list[UnsettledWrite]:
    """The key's last use (best effort, logged by the authenticator: not part of the books)."""
    if touch is not None:
        await touch
    return []
