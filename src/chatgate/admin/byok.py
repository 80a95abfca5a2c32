"""Bring-your-own-keys through the admin API (a chatgate extension): a workspace's own Azure OpenAI resource
per region, shown (never its key), set and removed. Audited as OpenAI's `external_key.registered` /
`external_key.removed`.

The secret is regional data: it is written to the Secrets Manager of the stack that serves the region, and
only there (a stack answers 404 for a region it does not serve; use that region's API). Requests follow a
change within `CHATGATE_SECRET_MAX_AGE_SECONDS`. A workspace admin may manage its own workspace's resource.
The store is chatgate.stores.byok_secrets (boto3, run in a worker thread: admin calls only).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from chatgate.admin import audit
from chatgate.admin.control import Actor, ControlStore, Workspace
from chatgate.admin.workspaces import changeable, ensure_workspace, visible
from chatgate.errors import InvalidRequest, NotFound
from chatgate.upstream.config import AzureResource, EndpointPolicy, normalize_api_version

# Model and deployment names (as `chatgate workspaces byok set --deployment` takes them).
NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_KEY_LENGTH = 1024


class ByokSecret(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def resource(self) -> AzureResource: ...

    @property
    def updated_at(self) -> int | None: ...


class ByokStore(Protocol):
    def put(self, workspace_id: str, region: str, resource: AzureResource) -> str: ...

    def get(self, workspace_id: str, region: str) -> ByokSecret | None: ...

    def delete(self, workspace_id: str, region: str) -> bool: ...


def served(region: str, regions: Sequence[str]) -> str:
    if region not in regions:
        raise NotFound(
            f"This stack does not serve region '{region}': bring-your-own-keys secrets stay in their region, "
            f"so set them through that region's API. Served here: {', '.join(regions)}.",
            param="region",
            code="region_not_found",
        )
    return region


def resource_from_body(body: Mapping[str, Any], policy: EndpointPolicy) -> AzureResource:
    """The Azure resource a request body describes, checked as the gateway checks it when it serves."""
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.strip():
        raise InvalidRequest(
            "'endpoint' must be the resource's base URL.", param="endpoint", code="invalid_value"
        )
    endpoint = endpoint.strip().rstrip("/")
    problem = policy.problem(endpoint)
    if problem is not None:
        raise InvalidRequest(
            f"'endpoint' must be a base URL like https://NAME.openai.azure.com: {problem}.",
            param="endpoint",
            code="invalid_value",
        )
    api_key = body.get("api_key")
    if (
        not isinstance(api_key, str)
        or not api_key
        or len(api_key) > MAX_KEY_LENGTH
        or any(c.isspace() or not c.isprintable() for c in api_key)
    ):
        raise InvalidRequest(
            "'api_key' must be the resource's key: one line of printable characters.",
            param="api_key",
            code="invalid_value",
        )
    try:
        api_version = normalize_api_version(body.get("api_version"))
    except ValueError as exc:
        raise InvalidRequest(str(exc), param="api_version", code="invalid_value") from None
    deployments = body.get("deployments") or {}
    if not isinstance(deployments, dict) or not all(
        isinstance(model, str) and isinstance(name, str) and NAME.fullmatch(model) and NAME.fullmatch(name)
        for model, name in deployments.items()
    ):
        raise InvalidRequest(
            "'deployments' must map model names to deployment names (letters, digits, '.', '_', '-').",
            param="deployments",
            code="invalid_value",
        )
    return AzureResource(endpoint, api_key, api_version, dict(deployments))


async def show(
    store: ControlStore, byok: ByokStore, actor: Actor, workspace_id: str, regions: Sequence[str]
) -> list[tuple[str, ByokSecret]]:
    await visible(store, actor, workspace_id)
    found = []
    for region in regions:
        secret = await asyncio.to_thread(byok.get, workspace_id, region)
        if secret is not None:
            found.append((region, secret))
    return found


async def set_resource(
    store: ControlStore,
    byok: ByokStore,
    actor: Actor,
    workspace_id: str,
    region: str,
    resource: AzureResource,
) -> ByokSecret:
    if actor.kind == "cli":  # the operator may configure a workspace the control plane does not know yet
        workspace = await ensure_workspace(store, actor, workspace_id)
    else:
        workspace = await changeable(store, actor, workspace_id)
    await asyncio.to_thread(byok.put, workspace_id, region, resource)
    secret = await asyncio.to_thread(byok.get, workspace_id, region)
    assert secret is not None
    details = {"id": f"{workspace_id}/{region}", "data": {"region": region, "endpoint": resource.endpoint}}
    await store.record(audit.entry(actor, "external_key.registered", project=workspace, details=details))
    return secret


async def remove_resource(
    store: ControlStore, byok: ByokStore, actor: Actor, workspace_id: str, region: str
) -> None:
    workspace: Workspace | str = workspace_id
    if actor.kind != "cli":  # the operator may remove what a workspace unknown to the control plane has
        workspace = await visible(store, actor, workspace_id)
    if not await asyncio.to_thread(byok.delete, workspace_id, region):
        raise NotFound(
            f"Project '{workspace_id}' has no bring-your-own-keys resource in region '{region}'.",
            param="region",
            code="not_found",
        )
    details = {"id": f"{workspace_id}/{region}"}
    await store.record(audit.entry(actor, "external_key.removed", project=workspace, details=details))
