"""Resolve a request to its upstream: the pool of Azure OpenAI resources that serves the calling workspace in
a region, and the model's deployment on each.

Upstream settings live in Secrets Manager as JSON secrets, one resource:
    {"endpoint": "https://<resource>.openai.azure.com", "api_key": "...", "api_version": "v1",
     "deployments": {"gpt-4o": "my-gpt4o-deployment"}}
or a pool of several (docs/upstreams.md), each with a name (logs, metrics, usage records), a priority
(smaller first, default 1) and a weight (within a priority, default 1):
    {"resources": [{"name": "sweden", "endpoint": ..., "api_key": ..., "priority": 1, "weight": 2, ...},
                   {"name": "france", "endpoint": ..., "api_key": ..., "priority": 2}]}
A one-resource secret is a pool of one, named "default". A pool only holds its secret's region's resources
(the secret's name carries the region), so no request ever leaves its region's pool; a BYOK pool never
falls back to the stack's. In a pool of several, a resource with a `deployments` map serves the models of
that map only; without one it serves every model (a pool of one serves every model, its map only renames).

`api_version` chooses the Azure surface for chat completions (the Responses API is on v1 only, and every
resource serves v1):
- "v1" (the default): Azure's v1 API, `/openai/v1/chat/completions`, no api-version, the deployment name
  in the body's `model`. It serves every model of the default allowlist, reasoning models included.
- a dated version ("2024-10-21", "2025-04-01-preview"): `/openai/deployments/{d}/chat/completions
  ?api-version=...`. Azure refuses reasoning models (o1, o3, o4, gpt-5 families) on versions older than
  2024-12-01-preview.
- the stack's shared resource, one secret per region (`Settings.upstream_secret_name`); `deployments` is
  optional there (a model's deployment defaults to its name) and the models are the stack's
  (CHATGATE_MODELS);
- a bring-your-own-keys (BYOK) workspace's own resource, one secret per workspace and region
  (`Settings.byok_secret_name`, written by `chatgate workspaces byok set`). Its models are the keys of its
  `deployments` map; an empty map means the stack's models, each on a deployment of the same name.

Every request asks the SecretSource for the workspace's BYOK secret first. The source caches answers,
"no such secret" included, for `CHATGATE_SECRET_MAX_AGE_SECONDS`: on a warm instance a workspace without BYOK
costs no Secrets Manager call, and a changed, added or removed secret takes effect on every instance within
that bound. A BYOK secret that exists but cannot be used is a 502, never a silent fallback to the shared
resource (the workspace's traffic and bills belong to its own resource).

A BYOK endpoint is checked on every resolution, not only by the CLI (the secret can be written by other
means): `https://` on a host ending in one of CHATGATE_BYOK_ENDPOINT_SUFFIXES (Azure's by default), port
443 if any, no user info, query or fragment, a plain path. Anything else (the Lambda Runtime API on
http://127.0.0.1:9001, `https://a:b:c`, `https://x.openai.azure.com@evil.example`) is refused with the
same 502 before anything is reserved or sent. `chatgate dev` also allows plain-http loopback endpoints
(its emulators) unless the suffix variable is set. The key is checked there too: one holding CR, LF or NUL
(it would end the `api-key` header and smuggle what follows) is refused with the same 502
(`byok_api_key_not_allowed`); the transport would refuse to send it anyway.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from chatgate import workspace_ids
from chatgate.concurrently import both
from chatgate.errors import ChatgateError, ModelNotFound, UpstreamError
from chatgate.settings import DEFAULT_BYOK_ENDPOINT_SUFFIXES, Settings
from chatgate.upstream.transport import unsafe_header_value

# Azure's v1 surface: no api-version, serves every model (a dated version can be chosen per upstream).
V1_API_VERSION = "v1"
DEFAULT_API_VERSION = V1_API_VERSION
# Dated versions: YYYY-MM-DD, optionally -preview.
_DATED_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
# The owner (`owned_by`) of the models the stack's shared resources serve.
STACK_OWNER = "chatgate"
# Resource names (metric dimensions, usage record fields): a closed, short alphabet.
_RESOURCE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
DEFAULT_RESOURCE_NAME = "default"
MAX_POOL_RESOURCES = 16


_DNS_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)*/?")
_AZURE_SUFFIXES = tuple(DEFAULT_BYOK_ENDPOINT_SUFFIXES.split(","))


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    """Which endpoints a bring-your-own-keys secret may name."""

    suffixes: tuple[str, ...] = _AZURE_SUFFIXES
    allow_http_loopback: bool = False

    def problem(self, url: str) -> str | None:
        """Why `url` may not be used, or None when it may."""
        if not url.isascii() or not url.isprintable() or any(c.isspace() for c in url):
            return "it holds spaces, control or non-ASCII characters"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return "its port is not a number"
        host = (parts.hostname or "").lower()
        if parts.username is not None or parts.password is not None or "@" in parts.netloc:
            return "it holds user information"
        if parts.query or parts.fragment or "?" in url or "#" in url:
            return "it holds a query or a fragment"
        if not _PLAIN_PATH.fullmatch(parts.path) or "/../" in f"{parts.path}/" or "/./" in f"{parts.path}/":
            return "its path is not a plain base path"
        if self.allow_http_loopback and parts.scheme in ("http", "https") and _is_loopback(host):
            return None
        if parts.scheme != "https":
            return "it is not an https:// URL"
        if port not in (None, 443):
            return "it names a port other than 443"
        if not _DNS_NAME.fullmatch(host) or not host.endswith(self.suffixes):
            return f"its host is not under {', '.join(self.suffixes)}"
        return None


def byok_endpoint_policy(settings: Settings) -> EndpointPolicy:
    """The policy the settings describe (CHATGATE_BYOK_ENDPOINT_SUFFIXES; loopback for `chatgate dev`)."""
    return EndpointPolicy(settings.byok_endpoint_suffixes, settings.byok_allow_http_loopback)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_api_version(value: object) -> str:
    """The api_version of a secret or the CLI: "v1" (also when unset) or a dated version; ValueError
    otherwise."""
    text = str(value or "").strip()
    if not text or text.lower() == V1_API_VERSION:
        return V1_API_VERSION
    if _DATED_API_VERSION.fullmatch(text) is None:
        raise ValueError(
            "api_version must be 'v1' or a dated version such as 2024-10-21 or 2025-04-01-preview, "
            f"not {text!r}"
        )
    return text


def byok_capable(workspace_id: str) -> bool:
    """Whether a workspace id can name a BYOK secret (others never have one, and are never looked up)."""
    return workspace_ids.valid(workspace_id)


@dataclass(frozen=True, slots=True)
class AzureResource:
    """One Azure OpenAI resource: where to call, with which key, its model -> deployment map, and its place
    in its pool (name, priority, weight)."""

    endpoint: str
    api_key: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    deployments: Mapping[str, str] = field(default_factory=dict)
    name: str = DEFAULT_RESOURCE_NAME
    priority: int = 1
    weight: float = 1.0

    @classmethod
    def from_secret(cls, value: Mapping[str, Any]) -> AzureResource:
        endpoint, api_key = value.get("endpoint"), value.get("api_key")
        if not isinstance(endpoint, str) or not endpoint or not isinstance(api_key, str) or not api_key:
            raise ValueError("the secret needs non-empty 'endpoint' and 'api_key' strings")
        deployments = value.get("deployments") or {}
        if not isinstance(deployments, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in deployments.items()
        ):
            raise ValueError("'deployments' must map model names to deployment names")
        return cls(
            endpoint=endpoint.rstrip("/"),
            api_key=api_key,
            api_version=normalize_api_version(value.get("api_version")),
            deployments=dict(deployments),
            name=resource_name(value.get("name", DEFAULT_RESOURCE_NAME)),
            priority=_priority(value.get("priority", 1)),
            weight=_weight(value.get("weight", 1)),
        )

    def to_secret(self, *, in_pool: bool = False) -> dict[str, Any]:
        """The JSON value `from_secret` reads (with its name, priority and weight when in a pool)."""
        value: dict[str, Any] = {
            "endpoint": self.endpoint,
            "api_key": self.api_key,
            "api_version": self.api_version,
            "deployments": dict(self.deployments),
        }
        if in_pool:
            value.update(name=self.name, priority=self.priority, weight=self.weight)
        return value

    def deployment_for(self, model: str) -> str:
        return self.deployments.get(model, model)

    def deploys(self, model: str) -> bool:
        """Whether this resource serves `model` in a pool of several (its map, or every model)."""
        return not self.deployments or model in self.deployments

    @property
    def v1(self) -> bool:
        """Whether chat completions go to Azure's v1 surface (else the dated one)."""
        return self.api_version == V1_API_VERSION


def resource_name(value: object) -> str:
    """A resource's name: 1 to 64 letters, digits, '_' or '-' (it becomes a metric dimension)."""
    if not isinstance(value, str) or _RESOURCE_NAME.fullmatch(value) is None:
        raise ValueError(f"a resource name is 1 to 64 letters, digits, '_' or '-', not {value!r}")
    return value


def _priority(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ValueError(f"'priority' must be an integer from 1 to 1000, not {value!r}")
    return value


def _weight(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1000:
        raise ValueError(f"'weight' must be a number above 0 and at most 1000, not {value!r}")
    return float(value)


@dataclass(frozen=True, slots=True)
class UpstreamPool:
    """The resources of one secret: the stack's for a region, or a BYOK workspace's for a region."""

    region: str
    resources: tuple[AzureResource, ...]
    byok_workspace: str | None = None

    @classmethod
    def from_secret(
        cls, value: Mapping[str, Any], region: str, byok_workspace: str | None = None
    ) -> UpstreamPool:
        """Read a secret: one resource (a pool of one) or `{"resources": [...]}`; ValueError if unusable."""
        listed = value.get("resources")
        if listed is None:
            return cls(region, (AzureResource.from_secret(value),), byok_workspace)
        if not isinstance(listed, list) or not listed or len(listed) > MAX_POOL_RESOURCES:
            raise ValueError(f"'resources' must list 1 to {MAX_POOL_RESOURCES} resources")
        if not all(isinstance(item, dict) for item in listed):
            raise ValueError("each of 'resources' must be an object")
        resources = tuple(AzureResource.from_secret(item) for item in listed)
        if len({resource.name for resource in resources}) != len(resources):
            raise ValueError("resource names must be unique within a pool")
        return cls(region, resources, byok_workspace)

    def to_secret(self) -> dict[str, Any]:
        """The JSON value `from_secret` reads: the one-resource form for a pool of one named "default"."""
        if len(self.resources) == 1 and self.resources[0].name == DEFAULT_RESOURCE_NAME:
            return self.resources[0].to_secret()
        return {"resources": [resource.to_secret(in_pool=True) for resource in self.resources]}

    @property
    def key(self) -> str:
        """The pool's name in this instance's health records and in logs: `eu`, or `eu/byok/<workspace>`."""
        return self.region if self.byok_workspace is None else f"{self.region}/byok/{self.byok_workspace}"

    def serving(self, model: str) -> tuple[AzureResource, ...]:
        """The resources that deploy `model` (a pool of one: its resource, whatever the model)."""
        if len(self.resources) == 1:
            return self.resources
        return tuple(resource for resource in self.resources if resource.deploys(model))

    def named(self, name: str | None) -> AzureResource | None:
        """The resource called `name`; with None, the first by priority (records made before pools)."""
        if name is None:
            return min(self.resources, key=lambda resource: resource.priority)
        return next((resource for resource in self.resources if resource.name == name), None)


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where one attempt of a request goes."""

    region: str
    model: str
    resource: AzureResource
    deployment: str
    # The workspace whose own resource this is (bring-your-own-keys), or None for the stack's resource.
    byok_workspace: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamRoute:
    """Where one request may go: the resources of its pool that deploy its model (upstream/pool.py orders
    them by priority and weight, skips those cooling down, and fails over between them)."""

    pool: UpstreamPool
    model: str
    resources: tuple[AzureResource, ...]

    def target(self, resource: AzureResource) -> UpstreamTarget:
        return UpstreamTarget(
            region=self.pool.region,
            model=self.model,
            resource=resource,
            deployment=resource.deployment_for(self.model),
            byok_workspace=self.pool.byok_workspace,
        )

    @property
    def first(self) -> UpstreamTarget:
        """The target of the first resource by priority."""
        return self.target(min(self.resources, key=lambda resource: resource.priority))


@dataclass(frozen=True, slots=True)
class ModelCatalog:
    """The models a workspace may use in a region, and whose resource serves them."""

    models: tuple[str, ...]
    owned_by: str
    byok: bool

    def __contains__(self, model: object) -> bool:
        return model in self.models


class SecretSource(Protocol):
    """Cached JSON secrets (Secrets Manager in production: stores/secrets.py)."""

    async def get_json(self, name: str) -> Mapping[str, Any] | None:
        """The secret's JSON value, or None when no such secret exists ({} when it is not a JSON
        object)."""
        ...


class UpstreamDirectory:
    """Knows which pool serves each workspace in each region, and which models it may use there."""

    def __init__(
        self,
        secrets: SecretSource,
        *,
        models: tuple[str, ...],
        secret_name: Callable[[str], str],
        byok_secret_name: Callable[[str, str], str] | None = None,
        byok_endpoints: EndpointPolicy | None = None,
    ) -> None:
        self._secrets = secrets
        self._byok_endpoints = byok_endpoints or EndpointPolicy()
        self._models = tuple(dict.fromkeys(models))
        self._secret_name = secret_name
        self._byok_secret_name = byok_secret_name

    async def route(self, region: str, workspace_id: str, model: str) -> UpstreamRoute:
        """The resources that may serve a model in a region; ModelNotFound if the caller may not use it."""
        if model in self._models:  # the stack's pool is read alongside the workspace's own, if any
            own, shared = await both(self._byok(region, workspace_id), self._shared_or_error(region))
        else:
            own, shared = await self._byok(region, workspace_id), None
        if own is not None:
            if model not in self._byok_models(own):
                raise ModelNotFound(model)
            pool = own
        elif shared is None:
            raise ModelNotFound(model)
        elif isinstance(shared, ChatgateError):
            raise shared
        else:
            pool = shared
        resources = pool.serving(model)
        if not resources:
            raise ModelNotFound(model)
        return UpstreamRoute(pool, model, resources)

    async def resolve(self, region: str, workspace_id: str, model: str) -> UpstreamTarget:
        """The target of the model's first resource by priority (ModelNotFound as `route`)."""
        return (await self.route(region, workspace_id, model)).first

    async def _shared_or_error(self, region: str) -> UpstreamPool | ChatgateError:
        """The stack's pool, or its error as a value: a workspace with its own pool never needs it."""
        try:
            return await self.pool(region)
        except ChatgateError as error:
            return error

    async def catalog(self, region: str, workspace_id: str) -> ModelCatalog:
        """The models the workspace may use in the region (`GET /v1/models`)."""
        own = await self._byok(region, workspace_id)
        if own is not None:
            return ModelCatalog(self._byok_models(own), owned_by=workspace_id, byok=True)
        shared = await self._shared_or_error(region)
        if isinstance(shared, ChatgateError):  # listed all the same: a request names the problem
            return ModelCatalog(self._models, owned_by=STACK_OWNER, byok=False)
        served = tuple(model for model in self._models if shared.serving(model))
        return ModelCatalog(served, owned_by=STACK_OWNER, byok=False)

    async def owner_resource(
        self, region: str, workspace_id: str, name: str | None = None
    ) -> tuple[AzureResource, str | None] | None:
        """The resource `name` of the pool that serves the workspace in the region (None: the first by
        priority), and the BYOK workspace (None: the stack's) - where a stored response lives. None when
        the pool no longer has a resource of that name."""
        pool = await self._byok(region, workspace_id) or await self.pool(region)
        resource = pool.named(name)
        return None if resource is None else (resource, pool.byok_workspace)

    async def pool(self, region: str) -> UpstreamPool:
        """The stack's pool for a region."""
        value = await self._secrets.get_json(self._secret_name(region))
        if not value:
            raise UpstreamError(f"No upstream is configured for region '{region}'.")
        try:
            return UpstreamPool.from_secret(value, region)
        except ValueError:
            raise UpstreamError(f"The upstream for region '{region}' is misconfigured.") from None

    async def resource(self, region: str) -> AzureResource:
        """The stack's first resource by priority for a region."""
        found = (await self.pool(region)).named(None)
        assert found is not None  # a pool has at least one resource
        return found

    async def _byok(self, region: str, workspace_id: str) -> UpstreamPool | None:
        """The workspace's own pool in the region, or None when it has none."""
        if self._byok_secret_name is None or not byok_capable(workspace_id):
            return None
        value = await self._secrets.get_json(self._byok_secret_name(workspace_id, region))
        if value is None:
            return None
        try:
            pool = UpstreamPool.from_secret(value, region, workspace_id)
        except ValueError:
            raise UpstreamError(
                f"The bring-your-own-keys upstream of workspace '{workspace_id}' for region '{region}' is "
                "misconfigured. Contact your administrator."
            ) from None
        for resource in pool.resources:  # every resource of the pool, on every resolution
            problem = self._byok_endpoints.problem(resource.endpoint)
            if problem is not None:
                raise UpstreamError(
                    f"The bring-your-own-keys endpoint of workspace '{workspace_id}' for region '{region}' "
                    f"is not allowed: {problem}. It must be an https:// Azure OpenAI endpoint. Contact your "
                    "administrator.",
                    code="byok_endpoint_not_allowed",
                )
            if unsafe_header_value(resource.api_key):  # it goes in a header: a line break would smuggle
                raise UpstreamError(
                    f"The bring-your-own-keys API key of workspace '{workspace_id}' for region '{region}' "
                    "holds a line break or NUL character and cannot be used. Contact your administrator.",
                    code="byok_api_key_not_allowed",
                )
        return pool

    def _byok_models(self, pool: UpstreamPool) -> tuple[str, ...]:
        models: dict[str, None] = {}
        for resource in pool.resources:
            models.update(dict.fromkeys(tuple(resource.deployments) or self._models))
        return tuple(models)
