"""The Responses API's routes: `POST /v1/responses` runs the one pipeline with the Responses adapter;
`GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items` pass Azure's stored response
through, only for ids the calling workspace owns in the region (else 404 and nothing sent to Azure)."""

from __future__ import annotations

from fastapi import Request, Response

from chatgate.gateway import pipeline
from chatgate.gateway.apis.responses import ResponsesApi
from chatgate.gateway.auth import Principal
from chatgate.gateway.dependencies import entered
from chatgate.gateway.ownership import response_not_found
from chatgate.upstream.azure import StoredResponseCall
from chatgate.wiring import Services

# The query parameters of GET .../input_items that are passed on to Azure.
INPUT_ITEMS_PARAMS = frozenset({"after", "before", "include", "include[]", "limit", "order"})


async def create_response(request: Request) -> Response:
    region, caller, services = await entered(request)
    api = ResponsesApi(services.ownership, caller.workspace_id, region)
    return await pipeline.run(api, region, caller, request, services)


async def retrieve_response(request: Request) -> Response:
    region, caller, services = await entered(request)
    return await _stored(region, caller, request.path_params["response_id"], services, "GET")


async def delete_response(request: Request) -> Response:
    region, caller, services = await entered(request)
    return await _stored(region, caller, request.path_params["response_id"], services, "DELETE")


async def list_input_items(request: Request) -> Response:
    region, caller, services = await entered(request)
    params = [(k, v) for k, v in request.query_params.multi_items() if k in INPUT_ITEMS_PARAMS]
    response_id = request.path_params["response_id"]
    return await _stored(region, caller, response_id, services, "GET", "/input_items", params)


async def _stored(
    region: str,
    caller: Principal,
    response_id: str,
    services: Services,
    method: str,
    suffix: str = "",
    params: list[tuple[str, str]] | None = None,
) -> Response:
    try:
        owner = await services.ownership.check(caller.workspace_id, region, response_id)
        # Only the resource that stores it: a pool's other resources have never heard of it.
        found = await services.upstreams.owner_resource(region, caller.workspace_id, owner.resource)
        if found is None:
            raise response_not_found(response_id)
        resource, byok_workspace = found
        call = StoredResponseCall(region, resource, response_id, byok_workspace)
        content = await services.azure.stored_response(call, method, suffix, params)
        if method == "DELETE":
            await services.ownership.deleted(response_id)
    finally:
        await pipeline.settled(caller, services)
    return Response(content, media_type="application/json")
