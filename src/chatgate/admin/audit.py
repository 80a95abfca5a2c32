"""The audit log: every change made through chatgate.admin, with who, what, when and the request id.

Entries are written by the store in the same transaction as the change they describe (admin/control.py);
this module builds them and reads them back within what the caller may see.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from chatgate.admin.control import Actor, AuditEntry, ControlStore, Page, Workspace


def entry(
    actor: Actor,
    event_type: str,
    *,
    project: Workspace | str | None,
    details: dict[str, Any],
    now: float | None = None,
) -> AuditEntry:
    """The audit entry of one change (its id sorts by time, to the millisecond)."""
    at = time.time() if now is None else now
    project_id = project.workspace_id if isinstance(project, Workspace) else project
    project_name = project.name if isinstance(project, Workspace) else None
    return AuditEntry(
        entry_id=f"audit_log-{int(at * 1000):013d}-{secrets.token_hex(6)}",
        type=event_type,
        effective_at=int(at),
        actor=actor.to_audit(),
        request_id=actor.request_id,
        project_id=project_id,
        project_name=project_name,
        details=details,
    )


async def list_entries(
    store: ControlStore,
    actor: Actor,
    *,
    project_ids: frozenset[str] = frozenset(),
    event_types: frozenset[str] = frozenset(),
    after: str | None = None,
    limit: int = 20,
) -> Page[AuditEntry]:
    """Newest first. A workspace admin sees its own workspace's entries only: asking for others finds
    nothing, exactly as for a workspace that does not exist."""
    if actor.project_id is not None:
        if project_ids and actor.project_id not in project_ids:
            return Page([], has_more=False)
        project_ids = frozenset({actor.project_id})
    return await store.list_audit(project_ids=project_ids, after=after, limit=limit, event_types=event_types)
