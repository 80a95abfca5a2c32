"""/v1/organization/projects...: workspaces as OpenAI's projects (list, create, retrieve, modify, archive)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import workspaces
from chatgate.admin.api import objects
from chatgate.admin.api.common import admin_entered, json_body, limit_of, listing, optional_string, query_bool


async def list_projects(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    page = await workspaces.list_workspaces(
        store,
        actor,
        after=request.query_params.get("after"),
        limit=limit_of(request),
        include_archived=query_bool(request, "include_archived"),
    )
    return listing([objects.project(workspace) for workspace in page.items], page.has_more)


async def create_project(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    body = await json_body(request)
    workspace = await workspaces.create_workspace(
        store, actor, workspaces.check_name(body.get("name")), optional_string(body, "id")
    )
    return JSONResponse(objects.project(workspace))


async def retrieve_project(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    workspace = await workspaces.visible(store, actor, request.path_params["project_id"])
    return JSONResponse(objects.project(workspace))


async def modify_project(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    project_id = request.path_params["project_id"]
    body = await json_body(request)
    await workspaces.visible(store, actor, project_id)
    if body.get("name") is None:  # nothing else a chatgate project has can be changed
        return JSONResponse(objects.project(await workspaces.visible(store, actor, project_id)))
    workspace = await workspaces.rename_workspace(
        store, actor, project_id, workspaces.check_name(body["name"])
    )
    return JSONResponse(objects.project(workspace))


async def archive_project(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    workspace = await workspaces.archive_workspace(store, actor, request.path_params["project_id"])
    return JSONResponse(objects.project(workspace))
