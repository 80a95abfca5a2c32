"""Resolve a request to its upstream: the region's Azure OpenAI resource and the model's deployment.

Upstream settings live in Secrets Manager, one JSON secret per region:
    {"endpoint": "https://<resource>.openai.azure.com", "api_key": "...", "api_version": "2024-10-21",
     "deployments": {"gpt-4o": "my-gpt4o-deployment"}}
`deployments` is optional (a model's deployment defaults to the model's name). Secrets are read through a
SecretSource that caches them for `CHATGATE_SECRET_MAX_AGE_SECONDS`: a changed key or deployment map takes
effect on every instance within that bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.errors import ModelNotFound, UpstreamError

DEFAULT_API_VERSION = "2024-10-21"


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
            api_version=str(value.get("api_version") or DEFAULT_API_VERSION),
            deployments=dict(deployments),
        )

    def deployment_for(self, model: str) -> str:
        return self.deployments.get(model, model)


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    """Where one request goes."""

    region: str
    model: str
    resource: AzureResource
    deployment: str


class SecretSource(Protocol):
    """Cached JSON secrets (Secrets Manager in production: stores/secrets.py)."""

    async def get_json(self, name: str) -> Mapping[str, Any] | None:
        """The secret's JSON value, or None when no such secret exists."""
        ...


class UpstreamDirectory:
    """Knows which models a stack serves and which Azure resource serves each region."""

    def __init__(
        self,
        secrets: SecretSource,
        *,
        models: tuple[str, ...],
        secret_name: Callable[[str], str],
    ) -> None:
        self._secrets = secrets
        self._models = frozenset(models)
        self._secret_name = secret_name

    async def resolve(self, region: str, workspace_id: str, model: str) -> UpstreamTarget:
        """The target for a model in a region; ModelNotFound if the caller may not use the model."""
        if model not in self._models:
            raise ModelNotFound(model)
        resource = await self.resource(region)
        return UpstreamTarget(
            region=region, model=model, resource=resource, deployment=resource.deployment_for(model)
        )

    async def resource(self, region: str) -> AzureResource:
        value = await self._secrets.get_json(self._secret_name(region))
        if not value:
            raise UpstreamError(f"No upstream is configured for region '{region}'.")
        try:
            return AzureResource.from_secret(value)
        except ValueError:
            raise UpstreamError(f"The upstream for region '{region}' is misconfigured.") from None
