"""Workspaces (OpenAI's projects): create, list, read, rename, archive. Each change is audited.

A workspace admin sees its own workspace only: any other id answers exactly as an id that does not exist.
Creating and archiving are organisation operations. An archived workspace's keys stop working (within the
key cache, `CHATGATE_KEY_CACHE_SECONDS`) and it can no longer change.
"""

from __future__ import annotations

import re
import secrets
import time

from chatgate.admin import audit
from chatgate.admin.control import Actor, ControlStore, Page, Workspace
from chatgate.errors import Conflict, InvalidRequest, NotFound, PermissionDenied

# A workspace id names Secrets Manager secrets and metric dimensions (upstream/config.py byok_capable).
WORKSPACE_ID = re.compile(r"[A-Za-z0-9_+=.@-]{1,128}")
MAX_NAME_LENGTH = 256


def not_found(workspace_id: str) -> NotFound:
    return NotFound(f"No project found with id '{workspace_id}'.", param="project_id", code="not_found")


def organisation_only(actor: Actor, what: str) -> None:
    if not actor.organisation_admin:
        raise PermissionDenied(f"Only an organisation admin key may {what}.")


def check_name(name: object, param: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidRequest(f"'{param}' must be a non-empty string.", param=param, code="invalid_value")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(
            f"'{param}' must be at most {MAX_NAME_LENGTH} characters.", param=param, code="invalid_value"
        )
    return name.strip()


def check_workspace_id(workspace_id: object, param: str = "id") -> str:
    if not isinstance(workspace_id, str) or not WORKSPACE_ID.fullmatch(workspace_id):
        raise InvalidRequest(
            f"'{param}' must be 1 to 128 letters, digits or _+=.@- characters.",
            param=param,
            code="invalid_value",
        )
    return workspace_id


async def visible(store: ControlStore, actor: Actor, workspace_id: str) -> Workspace:
    """The workspace, if the actor may see it; else 404 as if it did not exist."""
    workspace = await store.get_workspace(workspace_id) if actor.sees(workspace_id) else None
    if workspace is None:
        raise not_found(workspace_id)
    return workspace


async def changeable(store: ControlStore, actor: Actor, workspace_id: str) -> Workspace:
    """The workspace, if the actor may see it and it is not archived (else 404 / 400)."""
    workspace = await visible(store, actor, workspace_id)
    if workspace.archived:
        raise InvalidRequest(
            f"Project '{workspace_id}' is archived and cannot be changed.",
            param="project_id",
            code="project_archived",
        )
    return workspace


async def create_workspace(
    store: ControlStore, actor: Actor, name: str, workspace_id: str | None = None
) -> Workspace:
    organisation_only(actor, "create projects")
    workspace = Workspace(
        workspace_id=check_workspace_id(workspace_id) if workspace_id is not None else new_workspace_id(),
        name=check_name(name),
        created_at=int(time.time()),
    )
    change = audit.entry(
        actor,
        "project.created",
        project=workspace,
        details={"id": workspace.workspace_id, "data": {"name": workspace.name}},
    )
    if not await store.create_workspace(workspace, change):
        raise Conflict(f"A project with id '{workspace.workspace_id}' exists already.", param="id")
    return workspace


def new_workspace_id() -> str:
    return f"proj_{secrets.token_hex(12)}"


async def list_workspaces(
    store: ControlStore, actor: Actor, *, after: str | None, limit: int, include_archived: bool
) -> Page[Workspace]:
    """By id. A workspace admin's list holds its own workspace only."""
    if actor.project_id is None:
        return await store.list_workspaces(after=after, limit=limit, include_archived=include_archived)
    own = await store.get_workspace(actor.project_id)
    shown = own is not None and (include_archived or not own.archived)
    if own is None or not shown or (after is not None and own.workspace_id <= after) or limit < 1:
        return Page([], has_more=False)
    return Page([own], has_more=False)


async def rename_workspace(store: ControlStore, actor: Actor, workspace_id: str, name: str) -> Workspace:
    workspace = await changeable(store, actor, workspace_id)
    name = check_name(name)
    change = audit.entry(
        actor,
        "project.updated",
        project=workspace,
        details={"id": workspace_id, "changes_requested": {"title": name}},
    )
    if not await store.rename_workspace(workspace_id, name, change):
        raise not_found(workspace_id)  # archived or gone meanwhile
    return Workspace(workspace_id, name, workspace.created_at, workspace.archived_at)


async def archive_workspace(store: ControlStore, actor: Actor, workspace_id: str) -> Workspace:
    workspace = await visible(store, actor, workspace_id)
    organisation_only(actor, "archive projects")
    if workspace.archived:
        return workspace  # archiving twice changes nothing
    at = int(time.time())
    change = audit.entry(actor, "project.archived", project=workspace, details={"id": workspace_id})
    if not await store.archive_workspace(workspace_id, at, change):
        return await visible(store, actor, workspace_id)  # archived meanwhile
    return Workspace(workspace_id, workspace.name, workspace.created_at, at)


async def ensure_workspace(store: ControlStore, actor: Actor, workspace_id: str) -> Workspace:
    """The workspace, created (named after its id) if the organisation's operator names a new one: how
    `chatgate keys create --workspace W` and `chatgate dev`'s demo key keep working on a fresh table."""
    workspace = await store.get_workspace(check_workspace_id(workspace_id, "workspace"))
    if workspace is not None or not actor.organisation_admin:
        return workspace or await visible(store, actor, workspace_id)
    try:
        return await create_workspace(store, actor, workspace_id, workspace_id)
    except Conflict:  # created meanwhile
        return await visible(store, actor, workspace_id)
