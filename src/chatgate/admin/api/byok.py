"""/v1/organization/projects/{project_id}/byok (chatgate's extension): a workspace's own Azure OpenAI
resource per region. GET lists the regions this stack serves that have one (never the key); POST .../byok/
{region} sets it, DELETE removes it, in this region's Secrets Manager only."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from chatgate.admin import byok
from chatgate.admin.api.common import admin_entered, json_body
from chatgate.errors import ServiceUnavailable
from chatgate.upstream.config import byok_endpoint_policy
from chatgate.wiring import Services


def _store(services: Services) -> byok.ByokStore:
    """The Secrets Manager store (boto3, built on the first BYOK call: admin calls only)."""
    if services.byok_admin is None:
        from chatgate.stores.byok_secrets import ByokSecretStore
        from chatgate.wiring import aws_clients

        settings = services.settings
        services.byok_admin = ByokSecretStore(aws_clients(settings)[1], settings.byok_secret_name)
    store: byok.ByokStore = services.byok_admin
    return store


def _object(region: str, secret: byok.ByokSecret) -> dict[str, Any]:
    return {
        "object": "organization.project.byok",
        "region": region,
        "endpoint": secret.resource.endpoint,
        "api_version": secret.resource.api_version,
        "deployments": dict(secret.resource.deployments),
        "updated_at": secret.updated_at,
    }


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        "Secrets Manager is temporarily unavailable. Please retry shortly.", headers={"retry-after": "1"}
    )


async def list_byok(request: Request) -> JSONResponse:
    from chatgate.stores.byok_secrets import ByokStoreError

    actor, store, services = await admin_entered(request)
    try:
        found = await byok.show(
            store, _store(services), actor, request.path_params["project_id"], services.settings.regions
        )
    except ByokStoreError as exc:
        raise _unavailable(exc) from exc
    return JSONResponse({"object": "list", "data": [_object(region, secret) for region, secret in found]})


async def set_byok(request: Request) -> JSONResponse:
    from chatgate.stores.byok_secrets import ByokStoreError

    actor, store, services = await admin_entered(request)
    region = byok.served(request.path_params["region"], services.settings.regions)
    resource = byok.resource_from_body(await json_body(request), byok_endpoint_policy(services.settings))
    try:
        secret = await byok.set_resource(
            store, _store(services), actor, request.path_params["project_id"], region, resource
        )
    except ByokStoreError as exc:
        raise _unavailable(exc) from exc
    return JSONResponse(_object(region, secret))


async def delete_byok(request: Request) -> JSONResponse:
    from chatgate.stores.byok_secrets import ByokStoreError

    actor, store, services = await admin_entered(request)
    region = byok.served(request.path_params["region"], services.settings.regions)
    try:
        await byok.remove_resource(store, _store(services), actor, request.path_params["project_id"], region)
    except ByokStoreError as exc:
        raise _unavailable(exc) from exc
    return JSONResponse({"object": "organization.project.byok.deleted", "region": region, "deleted": True})
