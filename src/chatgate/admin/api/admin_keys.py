"""/v1/organization/admin_api_keys (list, create, get, delete) and /v1/organization/me (chatgate's extension:
the calling admin key, with the workspace it is scoped to)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import admin_keys
from chatgate.admin.api import objects
from chatgate.admin.api.common import admin_entered, json_body, limit_of, listing, optional_string, page_after
from chatgate.admin.workspaces import check_name


async def list_admin_keys(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    found = await admin_keys.list_admin_keys(store, actor)
    chosen, more = page_after(
        found, lambda key: key.key_id, request.query_params.get("after"), limit_of(request)
    )
    return listing([objects.admin_api_key(key) for key in chosen], more)


async def create_admin_key(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    body = await json_body(request)
    value, key = await admin_keys.create_admin_key(
        store, actor, check_name(body.get("name")), optional_string(body, "project_id")
    )
    return JSONResponse(objects.admin_api_key(key, value))


async def get_admin_key(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    key = await admin_keys.get_admin_key(store, actor, request.path_params["key_id"])
    return JSONResponse(objects.admin_api_key(key))


async def delete_admin_key(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    key = await admin_keys.delete_admin_key(store, actor, request.path_params["key_id"])
    return JSONResponse({"object": "organization.admin_api_key.deleted", "id": key.key_id, "deleted": True})


async def me(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    assert actor.key_id is not None
    key = await admin_keys.get_admin_key(store, actor, actor.key_id)
    return JSONResponse(objects.admin_api_key(key))
