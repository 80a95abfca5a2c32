"""/v1/organization/projects/{project_id}/service_accounts and .../api_keys: a workspace's model keys.

Creating a service account creates its one key (shown once, in `api_key.value`); deleting the service
account or its key revokes the key."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import keys
from chatgate.admin.api import objects
from chatgate.admin.api.common import (
    admin_entered,
    json_body,
    limit_of,
    listing,
    optional_int,
    page_after,
)
from chatgate.admin.keys import key_id_of_service_account, service_account_id
from chatgate.admin.workspaces import check_name
from chatgate.errors import InvalidRequest


async def create_service_account(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    body = await json_body(request)
    if body.get("create_service_account_only"):
        raise InvalidRequest(
            "chatgate's service accounts hold exactly one API key: 'create_service_account_only' is not "
            "supported.",
            param="create_service_account_only",
            code="invalid_value",
        )
    expires_at = optional_int(body, "expires_at", minimum=int(time.time()) + 1)
    value, key = await keys.create_key(
        store, actor, request.path_params["project_id"], check_name(body.get("name")), expires_at=expires_at
    )
    return JSONResponse(objects.service_account_created(key, value))


async def list_service_accounts(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    found = await keys.list_keys(store, actor, request.path_params["project_id"])
    chosen, more = page_after(found, service_account_id, request.query_params.get("after"), limit_of(request))
    return listing([objects.service_account(key) for key in chosen], more)


async def retrieve_service_account(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    key_id = key_id_of_service_account(request.path_params["service_account_id"])
    key = await keys.get_key(store, actor, request.path_params["project_id"], key_id)
    return JSONResponse(objects.service_account(key))


async def delete_service_account(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    key_id = key_id_of_service_account(request.path_params["service_account_id"])
    key = await keys.revoke_key(store, actor, request.path_params["project_id"], key_id)
    return JSONResponse(
        {
            "object": "organization.project.service_account.deleted",
            "id": service_account_id(key),
            "deleted": True,
        }
    )


async def list_api_keys(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    found = await keys.list_keys(store, actor, request.path_params["project_id"])
    chosen, more = page_after(
        found, lambda key: key.key_id, request.query_params.get("after"), limit_of(request)
    )
    return listing([objects.project_api_key(key) for key in chosen], more)


async def retrieve_api_key(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    key = await keys.get_key(
        store, actor, request.path_params["project_id"], request.path_params["api_key_id"]
    )
    return JSONResponse(objects.project_api_key(key))


async def delete_api_key(request: Request) -> JSONResponse:
    actor, store, _ = await admin_entered(request)
    key = await keys.revoke_key(
        store, actor, request.path_params["project_id"], request.path_params["api_key_id"]
    )
    return JSONResponse({"object": "organization.project.api_key.deleted", "id": key.key_id, "deleted": True})
