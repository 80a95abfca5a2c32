"""/v1/organization/usage/completions and usage/embeddings: the region's usage ledger in daily buckets, each
endpoint the records of its API (admin/usage.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import usage
from chatgate.admin.api import objects
from chatgate.admin.api.common import admin_entered, query_int, query_list
from chatgate.errors import InvalidRequest, NotFound, ServiceUnavailable
from chatgate.limits.usage import COMPLETIONS, EMBEDDINGS
from chatgate.stores.usage_dynamodb import UsageStoreError

_FOREVER = 2**41


def usage_endpoint(api: str) -> Callable[[Request], Awaitable[JSONResponse]]:
    """The handler of `usage/<api>`: the same parameters, buckets, grouping, paging and scoping for every
    API; only the records summed and the results' shape differ."""

    async def endpoint(request: Request) -> JSONResponse:
        return await _usage(request, api)

    endpoint.__name__ = f"usage_{api}"
    return endpoint


async def _usage(request: Request, api: str) -> JSONResponse:
    actor, store, services = await admin_entered(request)
    if services.usage_records is None:
        raise NotFound("Usage is not available on this stack.", code="unknown_url")
    now = int(time.time())
    start_time = query_int(request, "start_time", None, low=0, high=_FOREVER)
    if start_time is None:
        raise InvalidRequest(
            "Missing required parameter: 'start_time'.", param="start_time", code="missing_required_parameter"
        )
    end_time = query_int(request, "end_time", None, low=0, high=_FOREVER)
    limit = query_int(request, "limit", None, low=-_FOREVER, high=_FOREVER)
    group_by = query_list(request, "group_by")
    unrecorded = [name for name in ("api_key_ids", "user_ids") if query_list(request, name)]
    if request.query_params.get("batch") is not None:
        unrecorded.append("batch")
    usage.check_query(
        start_time=start_time,
        end_time=end_time,
        bucket_width=request.query_params.get("bucket_width", "1d"),
        group_by=group_by,
        unrecorded_filters=unrecorded,
        limit=limit,
        now=now,
    )
    page = query_int(request, "page", None, low=0, high=_FOREVER)
    query = usage.UsageQuery(
        start_time=start_time,
        end_time=end_time if end_time is not None else now,
        project_ids=frozenset(query_list(request, "project_ids")),
        models=frozenset(query_list(request, "models")),
        group_by=tuple(group_by),
        limit=limit or usage.DEFAULT_BUCKETS,
        page=page,
        api=api,
    )
    try:
        buckets, next_page = await usage.usage_buckets(store, services.usage_records, actor, query)
    except UsageStoreError as exc:
        raise ServiceUnavailable(
            "Usage records are temporarily unavailable. Please retry shortly.", headers={"retry-after": "1"}
        ) from exc
    return JSONResponse(objects.usage_page(buckets, next_page, api))


usage_completions = usage_endpoint(COMPLETIONS)
usage_embeddings = usage_endpoint(EMBEDDINGS)
