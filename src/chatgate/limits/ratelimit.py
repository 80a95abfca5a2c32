"""Workspace rate limits: requests and tokens per window, per workspace and model, shared by all instances.

Algorithm: a fixed window with the window start in the counter's key (docs/rate-limits.md has the full
argument). Each (workspace, model, window) has one counter item {requests, tokens}. Admitting a request is
one atomic conditional increment of both counters ("requests + 1 <= limit and tokens + cost <= limit");
reconciling it is one add: unused tokens back to the same item, tokens beyond the reservation to the item
of the window in which the request ends (which may be a later one). The store answers with the counts after
the increment (or, refused, the counts that refused it), which is all the headers and the retry hint need:
no reads. Every write carries the request's marker (stores/markers.py), so each is applied once however
often it is retried: an admission whose answer was lost is retried, and one still in doubt after its
retries (a 503 to the client) is released by the settlement, requests and tokens, if it was applied.

- Steady traffic at 90% of the limits is never refused: an aligned window is an interval of length W, so
  it holds at most ceil(0.9 L) <= L evenly spaced requests.
- Worst case for a bursty client: L per aligned window, 2 L in any interval of length W (L at the end of a
  window, L at the start of the next).
- The retry hint is the end of the current window: the next window's counter starts at zero, so a retry
  then succeeds unless something else used the budget first.

This module is the domain: no boto3. The DynamoDB adapter is chatgate.stores.ratelimit_dynamodb.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from chatgate.errors import RateLimitExceeded, ServiceUnavailable
from chatgate.gateway.background import BackgroundWrites
from chatgate.limits.ledger import UnsettledWrite
from chatgate.stores.markers import new_marker

if TYPE_CHECKING:
    from chatgate.settings import Settings

logger = logging.getLogger(__name__)

LimitKind = Literal["requests", "tokens"]

# How long a window's item outlives the window: long enough for the slowest stream to reconcile into it.
RETENTION_SECONDS = 3600
# Added to every retry hint so an instance whose clock is slightly behind still sees the next window.
RETRY_MARGIN_SECONDS = 0.01
# Retry hint of a 503 when the counter store is failing.
STORE_DOWN_RETRY_SECONDS = 1


@dataclass(frozen=True)
class Limits:
    """A workspace's limits for one model: requests and tokens per window."""

    requests: int
    tokens: int

    def __post_init__(self) -> None:
        if self.requests < 0 or self.tokens < 0:
            raise ValueError("limits must not be negative")

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """The stack's default limits (CHATGATE_RPM_LIMIT / CHATGATE_TPM_LIMIT)."""
        return cls(requests=settings.rpm_limit, tokens=settings.tpm_limit)


@dataclass(frozen=True)
class Counts:
    """A window's counters as the store saw them."""

    requests: int = 0
    tokens: int = 0


@dataclass(frozen=True)
class AddResult:
    """The outcome of a conditional increment: admitted, and the counts after it (or that refused it)."""

    admitted: bool
    counts: Counts


class CounterStoreError(Exception):
    """The counter store failed (throttled, unreachable, misconfigured). The message holds no secrets;
    `maybe_applied` says whether the write may have been applied all the same (no answer came)."""

    def __init__(self, message: str, *, maybe_applied: bool = False) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


class CounterStore(Protocol):
    """Where the window counters live (DynamoDB in production, a dict in unit tests). Every write is
    applied once per marker, however often it is sent."""

    async def try_add(
        self,
        key: str,
        *,
        requests: int,
        tokens: int,
        max_requests: int,
        max_tokens: int,
        expires_at: int,
        marker: str,
    ) -> AddResult:
        """Atomically add both amounts if the results stay within max_requests and max_tokens, and mark
        the request admitted (admitted again, without adding, if the marker is already there)."""
        ...

    async def settle(self, key: str, *, marker: str, requests: int, tokens: int) -> bool:
        """Add (zero or negative) amounts and end the marked admission, if it is still open: False if not."""
        ...

    async def add_tokens(self, key: str, tokens: int, *, expires_at: int, marker: str) -> bool:
        """Add tokens to a counter once per marker (False: already added)."""
        ...

    async def read(self, key: str) -> Counts:
        """The current counts (zero when the item does not exist)."""
        ...


def format_duration(seconds: float) -> str:
    """A duration as OpenAI writes it in x-ratelimit-reset-*: "250ms", "1s", "1.5s", "6m0s", "1h0m0s"."""
    millis = max(0, math.ceil(round(seconds * 1000, 6)))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0") if frac else str(whole)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def retry_headers(seconds: float) -> dict[str, str]:
    """retry-after (whole seconds, rounded up) and retry-after-ms."""
    millis = max(1, math.ceil(round(seconds * 1000, 6)))
    return {"retry-after": str(math.ceil(millis / 1000)), "retry-after-ms": str(millis)}


@dataclass(frozen=True)
class RateLimitStatus:
    """What the x-ratelimit-* headers say: limits, what is left in this window, and when it resets."""

    limit_requests: int
    remaining_requests: int
    reset_requests: float
    limit_tokens: int
    remaining_tokens: int
    reset_tokens: float

    @classmethod
    def of(cls, limits: Limits, counts: Counts, seconds_to_reset: float) -> RateLimitStatus:
        """The status of a window with `counts` used, `seconds_to_reset` before it ends."""
        return cls(
            limit_requests=limits.requests,
            remaining_requests=max(0, limits.requests - counts.requests),
            reset_requests=seconds_to_reset if counts.requests > 0 else 0.0,
            limit_tokens=limits.tokens,
            remaining_tokens=max(0, limits.tokens - counts.tokens),
            reset_tokens=seconds_to_reset if counts.tokens > 0 else 0.0,
        )

    def headers(self) -> dict[str, str]:
        """The six x-ratelimit-* headers, for every response (200s, streams before the first byte, 429s)."""
        return {
            "x-ratelimit-limit-requests": str(self.limit_requests),
            "x-ratelimit-remaining-requests": str(self.remaining_requests),
            "x-ratelimit-reset-requests": format_duration(self.reset_requests),
            "x-ratelimit-limit-tokens": str(self.limit_tokens),
            "x-ratelimit-remaining-tokens": str(self.remaining_tokens),
            "x-ratelimit-reset-tokens": format_duration(self.reset_tokens),
        }


@dataclass
class Reservation:
    """An admitted request: what it reserved, where, and the status to send in its headers."""

    workspace_id: str
    model: str
    tokens: int
    key: str
    expires_at: int
    status: RateLimitStatus
    # The start of the window that admitted the request (epoch seconds).
    window_start: int = 0
    # False when admitted without counting (store down and fail-open): reconcile does nothing.
    enforced: bool = True
    # The request's marker on every write (stores/markers.py).
    marker: str = field(default_factory=new_marker)
    # The admission's outcome is unknown (the client got a 503): reconciling releases it, if applied.
    in_doubt: bool = False
    settled: bool = field(default=False, init=False)

    def headers(self) -> dict[str, str]:
        """The x-ratelimit-* headers for this request's response."""
        return self.status.headers()


def counter_key(workspace_id: str, model: str, window_start: int) -> str:
    """pk of a window's counter item: RL#<workspace>#<model>#<window start, epoch seconds>."""

    def part(value: str) -> str:
        return value.replace("%", "%25").replace("#", "%23")

    return f"RL#{part(workspace_id)}#{part(model)}#{window_start}"


class ReservationInDoubt(ServiceUnavailable):
    """503: the admission write got no answer; it may have been applied. The settlement releases
    `reservation` (requests and tokens) if it was."""

    def __init__(self, message: str, *, reservation: Reservation, headers: dict[str, str]) -> None:
        super().__init__(message, headers=headers)
        self.reservation = reservation


class RateLimiter:
    """Reserves a request's tokens before it is forwarded and corrects them to actual usage afterwards."""

    def __init__(
        self,
        store: CounterStore,
        *,
        window_seconds: int = 60,
        fail_open: bool = False,
        clock: Callable[[], float] = time.time,
        retention_seconds: int = RETENTION_SECONDS,
    ) -> None:
        if window_seconds < 1:
            raise ValueError("window_seconds must be at least 1")
        self._store = store
        self._window = window_seconds
        self._fail_open = fail_open
        self._clock = clock
        self._retention = retention_seconds
        self._writes = BackgroundWrites()

    @classmethod
    def from_settings(
        cls, store: CounterStore, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> RateLimiter:
        """A limiter with the stack's window and fail-open switch."""
        return cls(
            store,
            window_seconds=settings.rate_window_seconds,
            fail_open=settings.rate_limit_fail_open,
            clock=clock,
        )

    async def reserve(self, workspace_id: str, model: str, tokens: int, limits: Limits) -> Reservation:
        """Admit one request costing `tokens` (prompt + completion allowance), or raise.

        Raises RateLimitExceeded (429, with retry-after unless the request can never fit) or
        ServiceUnavailable (503, retry-after 1 s) when the store fails and fail-open is off.
        """
        if tokens < 0:
            raise ValueError("tokens must not be negative")
        now = self._clock()
        start = int(now // self._window) * self._window
        end = start + self._window
        key = counter_key(workspace_id, model, start)
        expires_at = end + self._retention
        if limits.requests < 1 or tokens > limits.tokens:
            raise await self._never_fits(workspace_id, model, tokens, limits, key, end - now)
        marker = new_marker()
        try:
            result = await self._store.try_add(
                key,
                requests=1,
                tokens=tokens,
                max_requests=limits.requests,
                max_tokens=limits.tokens,
                expires_at=expires_at,
                marker=marker,
            )
        except CounterStoreError as exc:
            doubt = Reservation(
                workspace_id,
                model,
                tokens,
                key,
                expires_at,
                RateLimitStatus.of(limits, Counts(), 0.0),
                window_start=start,
                marker=marker,
                in_doubt=exc.maybe_applied,
            )
            return self._store_down(exc, doubt, limits)
        status = RateLimitStatus.of(limits, result.counts, end - now)
        if result.admitted:
            return Reservation(
                workspace_id, model, tokens, key, expires_at, status, window_start=start, marker=marker
            )
        kind: LimitKind = "requests" if result.counts.requests + 1 > limits.requests else "tokens"
        wait = end - now + RETRY_MARGIN_SECONDS
        used = result.counts.requests if kind == "requests" else result.counts.tokens
        requested = 1 if kind == "requests" else tokens
        limit = limits.requests if kind == "requests" else limits.tokens
        message = (
            f"Rate limit reached for {model} in workspace {workspace_id} on {self._per(kind)}: "
            f"Limit {limit}, Used {used}, Requested {requested}. "
            f"Please try again in {format_duration(wait)}."
        )
        raise RateLimitExceeded(message, error_type=kind, headers={**status.headers(), **retry_headers(wait)})

    async def reconcile(self, reservation: Reservation, charged_tokens: int) -> list[UnsettledWrite]:
        """Correct a reservation to the tokens the request is charged (prompt + completion), and end its
        admission. Never raises: returns the writes that did not settle (empty when all did).

        Unused reservation goes back to the window that holds it. Tokens beyond the reservation are
        charged to the window in which the request ends (now), so the next admissions feel them even when
        the request was admitted in a window that has already closed: a window's counter may then exceed
        its limit, and nothing more is admitted in it. An admission in doubt is released (its request and
        all its tokens) if it was applied.

        Call it exactly once when the response ends: success, upstream failure, or client disconnect
        (later calls are ignored). The writes run shielded: if the caller is cancelled, they still complete.
        """
        if reservation.settled:
            logger.debug("rate-limit reservation %s already reconciled", reservation.key)
            return []
        reservation.settled = True
        if not reservation.enforced:
            return []
        return await self._writes.run(self._settle(reservation, max(0, charged_tokens) - reservation.tokens))

    async def drain(self) -> None:
        """Wait for reconciliations still in flight (at shutdown, or in tests)."""
        await self._writes.drain()

    async def _settle(self, reservation: Reservation, delta: int) -> list[UnsettledWrite]:
        unsettled: list[UnsettledWrite] = []
        marker = reservation.marker
        if reservation.in_doubt:
            delta = -reservation.tokens
        if delta > 0:
            start = int(self._clock() // self._window) * self._window
            if start > reservation.window_start:
                key = counter_key(reservation.workspace_id, reservation.model, start)
                expires_at = start + self._window + self._retention
                try:
                    await self._store.add_tokens(key, delta, expires_at=expires_at, marker=marker)
                except CounterStoreError as exc:
                    unsettled.append(
                        UnsettledWrite.of(
                            "overshoot", marker, exc, key=key, tokens=delta, expires_at=expires_at
                        )
                    )
                delta = 0
        requests = -1 if reservation.in_doubt else 0
        try:
            await self._store.settle(reservation.key, marker=marker, requests=requests, tokens=delta)
        except CounterStoreError as exc:
            unsettled.append(
                UnsettledWrite.of(
                    "reconcile", marker, exc, key=reservation.key, requests=requests, tokens=delta
                )
            )
        return unsettled

    def _per(self, kind: LimitKind) -> str:
        if self._window == 60:
            return f"{kind} per min ({'RPM' if kind == 'requests' else 'TPM'})"
        return f"{kind} per {format_duration(self._window)} window"

    async def _never_fits(
        self, workspace_id: str, model: str, tokens: int, limits: Limits, key: str, to_reset: float
    ) -> RateLimitExceeded:
        """The 429 for a request no window can admit: it says so and carries no retry hint."""
        if limits.requests < 1:
            kind: LimitKind = "requests"
            message = (
                f"Rate limit of 0 {self._per('requests')} for {model} in workspace {workspace_id}: "
                "requests to this model are not allowed."
            )
        else:
            kind = "tokens"
            message = (
                f"Request too large for {model} in workspace {workspace_id} on {self._per('tokens')}: "
                f"Limit {limits.tokens}, Requested {tokens}. "
                "The input or output tokens must be reduced in order to run successfully."
            )
        try:
            headers = RateLimitStatus.of(limits, await self._store.read(key), to_reset).headers()
        except CounterStoreError as exc:
            logger.warning("rate-limit store read failed for an oversized request: %s", exc)
            headers = {
                "x-ratelimit-limit-requests": str(limits.requests),
                "x-ratelimit-limit-tokens": str(limits.tokens),
            }
        return RateLimitExceeded(message, error_type=kind, headers=headers)

    def _store_down(self, exc: CounterStoreError, doubt: Reservation, limits: Limits) -> Reservation:
        workspace_id, model = doubt.workspace_id, doubt.model
        if not self._fail_open:
            outcome = "unknown (released at settlement if applied)" if doubt.in_doubt else "failed"
            logger.error(
                "rate-limit admission %s for workspace %s model %s: %s", outcome, workspace_id, model, exc
            )
            message = "The rate limiter is temporarily unavailable. Please retry in 1 second."
            headers = retry_headers(STORE_DOWN_RETRY_SECONDS)
            if doubt.in_doubt:
                raise ReservationInDoubt(message, reservation=doubt, headers=headers) from exc
            raise ServiceUnavailable(message, headers=headers) from exc
        logger.warning(
            "rate-limit store failed for workspace %s model %s; admitting uncounted (fail-open): %s",
            workspace_id,
            model,
            exc,
        )
        # Fail-open: served uncounted; an admission that may have been applied is released when settled.
        doubt.status = RateLimitStatus.of(limits, Counts(), 0.0)
        doubt.enforced = doubt.in_doubt
        return doubt
