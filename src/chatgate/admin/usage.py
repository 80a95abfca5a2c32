"""Usage in OpenAI's shape (usage/completions, usage/embeddings): the regional usage ledger
(chatgate.limits.usage)
in time buckets, each endpoint summing the records of its own API (a record's `api`), as OpenAI splits usage.

The ledger keeps one record per workspace, model and UTC day, so buckets are whole UTC days (`1d`); finer
widths, and grouping or filtering by what the ledger does not record (API key, user, batch, service tier),
are refused with a 400 rather than answered with invented numbers. Usage records are regional data: each
region's stack answers with its own region's usage (docs/admin.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from chatgate.admin.control import Actor, ControlStore
from chatgate.errors import InvalidRequest
from chatgate.limits.usage import COMPLETIONS, UsageRecord

DAY = 86_400
GROUPS = ("project_id", "model")
UNRECORDED = ("user_id", "api_key_id", "batch", "service_tier")
MAX_BUCKETS = 31
DEFAULT_BUCKETS = 7
# Workspaces listed per page when an organisation admin asks for every workspace's usage, and read at once.
_WORKSPACE_PAGE = 100
_PARALLEL_READS = 8


class UsageReader(Protocol):
    async def records(self, workspace_id: str, first_day: str, last_day: str) -> list[UsageRecord]: ...


@dataclass(frozen=True, slots=True)
class UsageQuery:
    start_time: int
    end_time: int
    project_ids: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    group_by: tuple[str, ...] = ()
    limit: int = DEFAULT_BUCKETS
    page: int | None = None  # the start of the first bucket of this page
    api: str = COMPLETIONS  # whose records are summed: chatgate.limits.usage's COMPLETIONS or EMBEDDINGS


@dataclass(frozen=True, slots=True)
class UsageResult:
    input_tokens: int
    output_tokens: int
    requests: int
    project_id: str | None
    model: str | None
    rate_limited: int = 0  # chatgate's 429 rate_limit_exceeded refusals (num_rate_limited_requests)


@dataclass(frozen=True, slots=True)
class Bucket:
    start_time: int
    end_time: int
    results: list[UsageResult]


def check_query(
    *,
    start_time: int,
    end_time: int | None,
    bucket_width: str,
    group_by: Sequence[str],
    unrecorded_filters: Sequence[str],
    limit: int | None,
    now: int,
) -> None:
    if bucket_width != "1d":
        raise InvalidRequest(
            f"bucket_width '{bucket_width}' is not available: chatgate's usage ledger is kept per UTC day, "
            "so buckets are '1d'.",
            param="bucket_width",
            code="invalid_value",
        )
    for name in group_by:
        if name not in GROUPS:
            raise InvalidRequest(
                f"group_by '{name}' is not available: usage is recorded per project and model only.",
                param="group_by",
                code="invalid_value",
            )
    for name in unrecorded_filters:
        raise InvalidRequest(
            f"'{name}' is not available: usage is recorded per project and model only.",
            param=name,
            code="invalid_value",
        )
    if start_time < 0 or (end_time is not None and end_time <= start_time):
        raise InvalidRequest("'end_time' must be after 'start_time'.", param="end_time", code="invalid_value")
    if limit is not None and not 1 <= limit <= MAX_BUCKETS:
        raise InvalidRequest(
            f"'limit' must be between 1 and {MAX_BUCKETS} for 1d buckets.",
            param="limit",
            code="invalid_value",
        )


def _day(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).date().isoformat()


async def _workspaces(store: ControlStore, actor: Actor, asked: frozenset[str]) -> list[str]:
    """The workspaces whose usage is read: those asked for that the actor may see (an unseen or unknown
    id adds nothing, as if it did not exist), or every workspace the actor sees."""
    if actor.project_id is not None:
        return [actor.project_id] if not asked or actor.project_id in asked else []
    if asked:
        return sorted(asked)
    found: list[str] = []
    after: str | None = None
    while True:
        page = await store.list_workspaces(after=after, limit=_WORKSPACE_PAGE, include_archived=True)
        found.extend(workspace.workspace_id for workspace in page.items)
        if not page.has_more or not page.items:
            return found
        after = page.items[-1].workspace_id


async def usage_buckets(
    store: ControlStore, ledger: UsageReader, actor: Actor, query: UsageQuery
) -> tuple[list[Bucket], int | None]:
    """The page's day buckets and the start of the next page (None: this is the last)."""
    first = max(query.page or query.start_time, query.start_time) // DAY * DAY
    end = query.end_time
    starts = list(range(first, end, DAY))[: query.limit + 1]
    next_page = starts[query.limit] if len(starts) > query.limit else None
    starts = starts[: query.limit]
    if not starts:
        return [], None
    totals: dict[tuple[int, str | None, str | None], list[int]] = {}
    by_day = {_day(start): start for start in starts}
    workspace_ids = await _workspaces(store, actor, query.project_ids)
    found: list[UsageRecord] = []
    for at in range(0, len(workspace_ids), _PARALLEL_READS):  # a few Query calls at a time
        reads = [
            ledger.records(workspace_id, _day(starts[0]), _day(starts[-1]))
            for workspace_id in workspace_ids[at : at + _PARALLEL_READS]
        ]
        found.extend(record for records in await asyncio.gather(*reads) for record in records)
    for record in found:
        if (
            record.api != query.api
            or record.day not in by_day
            or (query.models and record.model not in query.models)
        ):
            continue
        key = (
            by_day[record.day],
            record.workspace_id if "project_id" in query.group_by else None,
            record.model if "model" in query.group_by else None,
        )
        sums = totals.setdefault(key, [0, 0, 0, 0])
        sums[0] += record.prompt_tokens
        sums[1] += record.completion_tokens
        sums[2] += record.requests
        sums[3] += record.rate_limited
    buckets = []
    for start in starts:
        results = [
            UsageResult(sums[0], sums[1], sums[2], project_id, model, sums[3])
            for (day_start, project_id, model), sums in sorted(
                totals.items(), key=lambda item: (item[0][0], item[0][1] or "", item[0][2] or "")
            )
            if day_start == start
        ]
        buckets.append(Bucket(start, start + DAY, results))
    return buckets, next_page
