"""Resolve a request to its upstream: the Azure OpenAI resource that serves the calling workspace in a region,
and the model's deployment there.

Upstream settings live in Secrets Manager as JSON secrets:
    {"endpoint": "https://<resource>.openai.azure.com", "api_key": "...", "api_version": "v1",
     "deployments": {"gpt-4o": "my-gpt4o-deployment"}}

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
from chatgate.transport import unsafe_header_value

# Azure's v1 surface: no api-version, serves every model (a dated version can be chosen per upstream).
V1_API_VERSION = "v1"
DEFAULT_API_VERSION = V1_API_VERSION
# Dated versions: YYYY-MM-DD, optionally -preview.
_DATED_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")
# The owner (`owned_by`) of the models the stack's shared resources serve.
STACK_OWNER = "chatgate"


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
    """One Azure OpenAI resource: where to call, with which key, and its model -> deployment map."""

    endpoint: str
    api_key: str = field(repr=False)
    api_version: str = DEFAULT_API_VERSION
    deployments: Mapping[str, str] = field(default_factory=dict)

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
        )

    def to_secret(self) -> dict[str, Any]:
        """The JSON value `from_secret` reads."""
        return {
            "endpoint": self.endpoint,
            "api_key": self.api_key,
            "api_version": self.api_version,
            "deployments": dict(self.deployments),
        }

    def deployment_for(self, model: str) -> str:
        return self.deployments.get(model, model)

    @property
    def v1(self) -> bool:
        """Whether chat completions go to Azure's v1 surface (else the dated one)."""
        return self.api_version == V1_API_VERSION


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where one request goes."""

    region: str
    model: str
    resource: AzureResource
    deployment: str
    # The workspace whose own resource this is (bring-your-own-keys), or None for the stack's resource.
    byok_workspace: str | None = None


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
    """Knows which resource serves each workspace in each region, and which models it may use there."""

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

    async def resolve(self, region: str, workspace_id: str, model: str) -> UpstreamTarget:
        """The target for a model in a region; ModelNotFound if the caller may not use the model."""
        if model in self._models:  # the stack's resource is read alongside the workspace's own, if any
            own, shared = await both(self._byok(region, workspace_id), self._shared_or_error(region))
        else:
            own, shared = await self._byok(region, workspace_id), None
        if own is not None:
            if model not in self._byok_models(own):
                raise ModelNotFound(model)
            resource, byok_workspace = own, workspace_id
        elif shared is None:
            raise ModelNotFound(model)
        elif isinstance(shared, ChatgateError):
            raise shared
        else:
            resource, byok_workspace = shared, None
        return UpstreamTarget(
            region=region,
            model=model,
            resource=resource,
            deployment=resource.deployment_for(model),
            byok_workspace=byok_workspace,
        )

    async def _shared_or_error(self, region: str) -> AzureResource | ChatgateError:
        """The stack's resource, or its error as a value: a workspace with its own resource never needs it."""
        try:
            return await self.resource(region)
        except ChatgateError as error:
            return error

    async def catalog(self, region: str, workspace_id: str) -> ModelCatalog:
        """The models the workspace may use in the region (`GET /v1/models`)."""
        own = await self._byok(region, workspace_id)
        if own is not None:
            return ModelCatalog(self._byok_models(own), owned_by=workspace_id, byok=True)
        return ModelCatalog(self._models, owned_by=STACK_OWNER, byok=False)

    async def owner_resource(self, region: str, workspace_id: str) -> tuple[AzureResource, str | None]:
        """The resource that serves the workspace in the region, and the BYOK workspace (None: the
        stack's) - where the workspace's stored responses live."""
        own = await self._byok(region, workspace_id)
        if own is not None:
            return own, workspace_id
        return await self.resource(region), None

    async def resource(self, region: str) -> AzureResource:
        """The stack's shared resource for a region."""
        value = await self._secrets.get_json(self._secret_name(region))
        if not value:
            raise UpstreamError(f"No upstream is configured for region '{region}'.")
        try:
            return AzureResource.from_secret(value)
        except ValueError:
            raise UpstreamError(f"The upstream for region '{region}' is misconfigured.") from None

    async def _byok(self, region: str, workspace_id: str) -> AzureResource | None:
        """The workspace's own resource in the region, or None when it has none."""
        if self._byok_secret_name is None or not byok_capable(workspace_id):
            return None
        value = await self._secrets.get_json(self._byok_secret_name(workspace_id, region))
        if value is None:
            return None
        try:
            resource = AzureResource.from_secret(value)
        except ValueError:
            raise UpstreamError(
                f"The bring-your-own-keys upstream of workspace '{workspace_id}' for region '{region}' is "
                "misconfigured. Contact your administrator."
            ) from None
        problem = self._byok_endpoints.problem(resource.endpoint)
        if problem is not None:
            raise UpstreamError(
                f"The bring-your-own-keys endpoint of workspace '{workspace_id}' for region '{region}' is "
                f"not allowed: {problem}. It must be an https:// Azure OpenAI endpoint. Contact your "
                "administrator.",
                code="byok_endpoint_not_allowed",
            )
        if unsafe_header_value(resource.api_key):  # it goes in a header: a line break would smuggle a request
            raise UpstreamError(
                f"The bring-your-own-keys API key of workspace '{workspace_id}' for region '{region}' "
                "holds a line break or NUL character and cannot be used. Contact your administrator.",
                code="byok_api_key_not_allowed",
            )
        return resource

    def _byok_models(self, resource: AzureResource) -> tuple[str, ...]:
        return tuple(resource.deployments) or self._models
