"""The usage ledger: per workspace, model and UTC day, how many requests and tokens were used.

Records are added atomically (DynamoDB `ADD`, stores/usage_dynamodb.py) by chatgate.gateway.settlement, once
per
request however often the write is retried or replayed (the request's marker), with the same numbers the
rate-limit reservation is corrected to, and say how much of the usage chatgate had to count
itself because Azure's own `usage` never came (a stream that failed or whose client went away first).
Each record also says which of OpenAI's usage endpoints it belongs to (`api`: `completions` for chat
completions and responses, `embeddings`), as OpenAI's Usage API splits usage; a model serves one of them.

Records also count chatgate's own rate-limit refusals (`rate_limited`: its 429 `rate_limit_exceeded`s), at
most one write per workspace, model and day per instance per second carrying every refusal counted since
(`UsageLedger.refused`; docs/rate-limits.md, "Refusals in the usage ledger").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.gateway.background import BackgroundWrites
from chatgate.limits.ledger import UnsettledWrite
from chatgate.limits.tokens import TokenUsage
from chatgate.stores.markers import new_marker

logger = logging.getLogger(__name__)

COMPLETIONS, EMBEDDINGS = "completions", "embeddings"
# Refusals of one workspace, model and day are written at most once per instance per this many seconds.
REFUSALS_INTERVAL_SECONDS = 1.0


def usage_api(api_name: str) -> str:
    """The usage endpoint of a request of the API `api_name` (chatgate.gateway.apis' adapter names)."""
    return EMBEDDINGS if api_name == "embeddings" else COMPLETIONS


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
    # Upstream pools: requests and tokens per resource that answered (name -> (requests, total tokens)).
    resources: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    api: str = COMPLETIONS
    rate_limited: int = 0  # requests chatgate refused with a 429 rate_limit_exceeded (not in `requests`)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "model": self.model,
            "api": self.api,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "counted_requests": self.counted_requests,
            "counted_prompt_tokens": self.counted_prompt_tokens,
            "counted_completion_tokens": self.counted_completion_tokens,
            "rate_limited": self.rate_limited,
            "resources": {
                name: {"requests": requests, "total_tokens": total}
                for name, (requests, total) in sorted(self.resources.items())
            },
        }


class UsageStore(Protocol):
    """Where usage records live (DynamoDB in production: stores/usage_dynamodb.py)."""

    async def add(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = COMPLETIONS,
    ) -> bool:
        """Atomically add one request's usage to the (workspace, day, model) record, creating it, once per
        marker (False: it already was)."""
        ...


class RefusalStore(Protocol):
    async def add_refusals(
        self, workspace_id: str, day: str, model: str, count: int, *, marker: str, api: str
    ) -> bool:
        """Atomically add `count` rate-limit refusals to the (workspace, day, model) record, once per
        marker (False: it already was)."""
        ...


@dataclass(slots=True)
class _Refusals:
    count: int = 0  # counted on this instance, not written yet
    written_at: float = float("-inf")  # when this instance last wrote this key's refusals (monotonic)


class UsageLedger:
    """Adds finished requests (and rate-limit refusals) to the usage records. Never raises (returns the
    write if it did not settle); a write in flight completes even if its caller is cancelled, and
    `drain()` waits for those still running and writes the refusals not written yet (at shutdown, in
    tests)."""

    def __init__(
        self,
        store: UsageStore,
        refusals: RefusalStore | None = None,
        *,
        refusals_interval: float = REFUSALS_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._writes = BackgroundWrites()
        self._refusal_store = refusals  # None: refusals are not counted
        self._interval = refusals_interval
        self._clock = clock
        self._refusals: dict[tuple[str, str, str, str], _Refusals] = {}

    async def record(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = COMPLETIONS,
    ) -> list[UnsettledWrite]:
        unsettled = await self._writes.run(self._write(workspace_id, day, model, usage, marker, api))
        if self._refusals:  # refusals counted a while ago on this instance and not written yet
            await self._flush_refusals(due_only=True)
        return unsettled

    async def refused(self, workspace_id: str, day: str, model: str, *, api: str = COMPLETIONS) -> None:
        """Count one of chatgate's rate-limit refusals (before its 429 is sent: the write must be done
        before the body ends). Written now, with every refusal of the workspace, model and day counted
        since, unless this instance wrote them less than `refusals_interval` ago; then carried by the next
        write that is due (a later refusal or request on this instance, or `drain` at shutdown).
        Never raises."""
        if self._refusal_store is None:
            return
        self._refusals.setdefault((workspace_id, day, model, api), _Refusals()).count += 1
        await self._flush_refusals(due_only=True)

    async def drain(self) -> None:
        await self._flush_refusals(due_only=False)
        await self._writes.drain()

    async def _flush_refusals(self, *, due_only: bool) -> None:
        store = self._refusal_store
        if store is None:
            return
        now = self._clock()
        writes = []
        for key, pending in list(self._refusals.items()):
            since = now - pending.written_at
            if pending.count and (not due_only or since >= self._interval):
                writes.append(self._write_refusals(store, key, pending.count))
                pending.count, pending.written_at = 0, now
            elif not pending.count and since >= self._interval:
                del self._refusals[key]  # nothing to carry and free to write: the map stays small
        if writes:
            await self._writes.run(_all(writes))

    async def _write_refusals(self, store: RefusalStore, key: tuple[str, str, str, str], count: int) -> None:
        workspace_id, day, model, api = key
        try:
            await store.add_refusals(workspace_id, day, model, count, marker=new_marker(), api=api)
        except Exception as exc:
            if getattr(exc, "maybe_applied", False):  # may have been applied: counting again could double
                logger.warning("%d rate-limit refusals of %s may not be counted: %s", count, key, exc)
                return
            logger.warning(
                "%d rate-limit refusals of %s not written yet (retried later): %s", count, key, exc
            )
            self._refusals.setdefault(key, _Refusals(written_at=self._clock())).count += count

    async def _write(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, marker: str, api: str
    ) -> list[UnsettledWrite]:
        try:
            await self._store.add(workspace_id, day, model, usage, marker=marker, api=api)
        except Exception as exc:
            return [
                UnsettledWrite.of(
                    "usage",
                    marker,
                    exc,
                    workspace_id=workspace_id,
                    day=day,
                    model=model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    source=usage.source,
                    api=api,
                    # The pool's resource that answered, where TokenUsage carries one (upstream pools).
                    **({"resource": resource} if (resource := getattr(usage, "resource", None)) else {}),
                )
            ]
        return []


async def _all(writes: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*writes)
