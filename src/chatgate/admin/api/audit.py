"""/v1/organization/audit_logs: every change, newest first (a workspace admin sees its workspace's)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import audit
from chatgate.admin.api import objects
from chatgate.admin.api.common import admin_entered, limit_of, listing, query_list
from chatgate.errors import InvalidRequest

UNSUPPORTED = ("actor_ids", "actor_emails", "resource_ids", "before", "effective_at")


async def list_audit_logs(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    for name in UNSUPPORTED:
        if any(key.startswith(name) for key in request.query_params):
            raise InvalidRequest(
                f"'{name}' is not supported by chatgate's audit log: filter by project_ids[] and "
                "event_types[], page with after.",
                param=name,
                code="invalid_value",
            )
    page = await audit.list_entries(
        store,
        actor,
        project_ids=frozenset(query_list(request, "project_ids")),
        event_types=frozenset(query_list(request, "event_types")),
        after=request.query_params.get("after"),
        limit=limit_of(request),
    )
    return listing([objects.audit_log(entry) for entry in page.items], page.has_more)
