"""The one Settings class: every environment variable chatgate reads is named here, once.

A pydantic model filled from the environment by one validator, rather than pydantic-settings' BaseSettings:
the same typed, validated fields, and about 85 ms less cold start (pydantic-settings' import and its
class build), which the gateway pays on every new instance.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

DEFAULT_BYOK_ENDPOINT_SUFFIXES = ".openai.azure.com,.cognitiveservices.azure.com,.services.ai.azure.com"
DEFAULT_MODELS = "gpt-4.1,gpt-4.1-nano,o4-mini,o3-mini,o1-preview,gpt-4o,gpt-4o-mini,gpt-4,gpt-35-turbo"
DEFAULT_EMBEDDING_MODELS = "text-embedding-3-small,text-embedding-3-large,text-embedding-ada-002"
KNOWN_REGIONS = ("eu", "us")


def _split(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))


ENV_PREFIX = "CHATGATE_"


def _variable(name: str, field: FieldInfo) -> str:
    """The environment variable of a field: its alias, else CHATGATE_<NAME>."""
    alias = field.validation_alias
    return alias if isinstance(alias, str) else f"{ENV_PREFIX}{name.upper()}"


class Settings(BaseModel):
    """Configuration from the environment (names in the contract's "Configuration names" table). Each
    field reads CHATGATE_<FIELD>, or its alias where it has one (names matched whatever their case).
    Keyword arguments win over the environment: by field name, or by alias for the aliased fields."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        environment = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            variable = _variable(name, field)
            if variable in environment:  # an aliased field is validated under its alias
                values[variable if isinstance(field.validation_alias, str) else name] = environment[variable]
        return {**values, **given} if isinstance(given, dict) else given

    @classmethod
    def environment_variables(cls) -> set[str]:
        """Every variable a Settings reads."""
        return {_variable(name, field) for name, field in cls.model_fields.items()}

    regions_csv: str = Field("eu,us", validation_alias="CHATGATE_REGIONS")
    models_csv: str = Field(DEFAULT_MODELS, validation_alias="CHATGATE_MODELS")
    # Embedding models, a list of their own so that setting the chat models keeps embeddings as they were.
    embedding_models_csv: str = Field(DEFAULT_EMBEDDING_MODELS, validation_alias="CHATGATE_EMBEDDING_MODELS")

    # Rate limits (defaults per workspace and model; workspaces may override).
    rpm_limit: int = Field(500, ge=0)
    tpm_limit: int = Field(60_000, ge=0)
    rate_window_seconds: int = Field(60, ge=1)
    # Completion allowance reserved when a request states no max_tokens / max_completion_tokens.
    default_completion_reserve: int = Field(1024, ge=0)
    # Admit requests when the rate-limit store is down (default: refuse with 503).
    rate_limit_fail_open: bool = False

    # AWS resources (names come from the SAM stack when deployed).
    table_name: str = "chatgate"
    rate_limit_table_name: str = "chatgate-ratelimits"
    # The control plane (workspaces, keys, limits, admin keys, audit log): one DynamoDB global table
    # replicated to every region's stack (docs/deploy.md); locally, a table of its own.
    control_table_name: str = "chatgate-control"
    secret_prefix: str = "chatgate"  # noqa: S105 (a name prefix, not a secret)

    # Caches: how stale a warm instance may be.
    key_cache_seconds: float = Field(30.0, ge=0)
    # Unknown key ids are remembered this long (a flood of one wrong key costs one read per instance).
    key_negative_cache_seconds: float = Field(5.0, ge=0)
    # A key's last-used time is written at most once per this interval (per key and instance).
    key_last_used_interval_seconds: float = Field(300.0, ge=0)
    secret_max_age_seconds: int = Field(60, ge=0)

    # Request handling.
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    upstream_connect_timeout_seconds: float = Field(5.0, gt=0)
    upstream_timeout_seconds: float = Field(600.0, gt=0)
    upstream_max_connections: int = Field(100, ge=1)
    # Upstream pools (docs/upstreams.md): attempts per request across the pool's resources, and how long
    # after the first attempt another may still start.
    upstream_max_attempts: int = Field(3, ge=1, le=16)
    upstream_failover_window_seconds: float = Field(30.0, ge=0)

    # Streams: an SSE comment this often while the upstream is silent, and a deadline before the function's
    # own timeout (900 s in streaming mode) less a margin for the error frame and the settlement.
    stream_heartbeat_seconds: float = Field(15.0, gt=0)
    stream_max_seconds: float = Field(870.0, gt=0)
    # On SIGTERM: how long requests in flight (and their settlements) may take before the process exits.
    shutdown_grace_seconds: float = Field(10.0, ge=0)
    # How long a settlement write is retried before it is logged "unsettled" (docs/rate-limits.md).
    settlement_budget_seconds: float = Field(5.0, gt=0, le=60)
    # Hosts a bring-your-own-keys endpoint may use (https only), checked on every request. Unset: Azure's
    # suffixes; then `chatgate dev` also allows plain-http loopback endpoints (byok_allow_http_loopback).
    byok_endpoint_suffixes_csv: str | None = Field(None, validation_alias="CHATGATE_BYOK_ENDPOINT_SUFFIXES")
    byok_allow_http_loopback: bool = False

    # Admin API calls per rate window allowed to each admin key (a small fixed budget, docs/admin.md).
    admin_rpm_limit: int = Field(120, ge=1)

    log_level: str = "INFO"
    # `chatgate dev`'s log lines: "console" (readable), "json" (Powertools' lines, as deployed: what
    # `chatgate ledger replay --file` reads), or "auto": console on a terminal, JSON when written elsewhere.
    log_format: Literal["auto", "console", "json"] = "auto"

    # Observability (docs/observability.md): the CloudWatch namespace of the metrics lines, and whether
    # they carry per-workspace dimensions too (each workspace multiplies the custom metrics billed).
    metrics_namespace: str = Field("chatgate", min_length=1, max_length=255)
    metrics_per_workspace: bool = True
    metrics_enabled: bool = True

    @cached_property
    def regions(self) -> tuple[str, ...]:
        return _split(self.regions_csv)

    @cached_property
    def models(self) -> tuple[str, ...]:
        return _split(self.models_csv)

    @cached_property
    def embedding_models(self) -> tuple[str, ...]:
        return _split(self.embedding_models_csv)

    @cached_property
    def allowed_models(self) -> tuple[str, ...]:
        """The stack's allowlist: the chat models (CHATGATE_MODELS), then the embedding models
        (CHATGATE_EMBEDDING_MODELS), in configured order."""
        return tuple(dict.fromkeys((*self.models, *self.embedding_models)))

    @cached_property
    def byok_endpoint_suffixes(self) -> tuple[str, ...]:
        """The configured host suffixes, each with a leading dot ("azure.com" never matches "xazure.com")."""
        configured = _split(self.byok_endpoint_suffixes_csv or DEFAULT_BYOK_ENDPOINT_SUFFIXES)
        return tuple(s.lower() if s.startswith(".") else f".{s.lower()}" for s in configured)

    def upstream_secret_name(self, region: str) -> str:
        """The stack's Azure upstream for one region: {endpoint, api_key, api_version, deployments}."""
        return f"{self.secret_prefix}/upstream/{region}"

    def byok_secret_name(self, workspace_id: str, region: str) -> str:
        """A workspace's own Azure resource for one region (bring-your-own-keys)."""
        return f"{self.secret_prefix}/byok/{workspace_id}/{region}"
