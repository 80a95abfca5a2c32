"""The domain's records in the shapes of OpenAI's Administration API (tests/openapi/admin.json), plus the
extensions docs/admin.md names (`expires_at` on project API keys, `project_id` on admin keys,
`request_id` on audit log entries, `num_rate_limited_requests` on usage results)."""

from __future__ import annotations

import time
from typing import Any

from chatgate.admin.admin_keys import redacted
from chatgate.admin.control import AdminKey, AuditEntry, Workspace
from chatgate.admin.keys import service_account_id
from chatgate.admin.limits import rate_limit_id
from chatgate.admin.usage import Bucket, UsageResult
from chatgate.gateway.auth import KEY_PREFIX, ApiKey
from chatgate.limits.ratelimit import Limits
from chatgate.limits.usage import COMPLETIONS


def project(workspace: Workspace) -> dict[str, Any]:
    return {
        "id": workspace.workspace_id,
        "object": "organization.project",
        "name": workspace.name,
        "created_at": workspace.created_at,
        "archived_at": workspace.archived_at,
        "status": "archived" if workspace.archived else "active",
    }


def service_account(key: ApiKey) -> dict[str, Any]:
    return {
        "object": "organization.project.service_account",
        "id": service_account_id(key),
        "name": key.name,
        "role": "member",
        "created_at": key.created_at,
    }


def service_account_created(key: ApiKey, value: str) -> dict[str, Any]:
    return {
        **service_account(key),
        "api_key": {
            "object": "organization.project.service_account.api_key",
            "value": value,
            "name": key.name,
            "created_at": key.created_at,
            "id": key.key_id,
        },
    }


def project_api_key(key: ApiKey, now: float | None = None) -> dict[str, Any]:
    usable = key.usable_at(time.time() if now is None else now)
    return {
        "object": "organization.project.api_key",
        "redacted_value": f"{KEY_PREFIX}_{key.key_id}_...",
        "name": key.name,
        "created_at": key.created_at,
        "last_used_at": key.last_used_at,
        "expires_at": key.expires_at,
        "id": key.key_id,
        "owner_project_access": "active" if usable else "inactive",
        "owner": {
            "type": "service_account",
            "service_account": {
                "id": service_account_id(key),
                "name": key.name,
                "created_at": key.created_at,
                "role": "member",
            },
        },
    }


def rate_limit(model: str, limits: Limits) -> dict[str, Any]:
    return {
        "object": "project.rate_limit",
        "id": rate_limit_id(model),
        "model": model,
        "max_requests_per_1_minute": limits.requests,
        "max_tokens_per_1_minute": limits.tokens,
    }


def admin_api_key(key: AdminKey, value: str | None = None) -> dict[str, Any]:
    """AdminApiKey (AdminApiKeyCreateResponse with the value), plus `project_id`: the workspace a workspace
    admin key is scoped to, null for an organisation admin key."""
    body: dict[str, Any] = {
        "object": "organization.admin_api_key",
        "id": key.key_id,
        "name": key.name,
        "redacted_value": redacted(key.key_id),
        "created_at": key.created_at,
        "expires_at": None,
        "last_used_at": key.last_used_at,
        "owner": {
            "type": "user",
            "object": "organization.user",
            "id": key.key_id,
            "name": key.name,
            "created_at": key.created_at,
            "role": "owner" if key.project_id is None else "member",
        },
        "project_id": key.project_id,
    }
    if value is not None:
        body["value"] = value
    return body


def audit_log(entry: AuditEntry) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": entry.entry_id,
        "type": entry.type,
        "effective_at": entry.effective_at,
        "actor": entry.actor,
        entry.type: entry.details,
        "request_id": entry.request_id,
    }
    if entry.project_id is not None:
        body["project"] = {
            "id": entry.project_id,
            **({"name": entry.project_name} if entry.project_name else {}),
        }
    return body


def usage_page(buckets: list[Bucket], next_page: int | None, api: str) -> dict[str, Any]:
    """A page of usage buckets in OpenAI's shape for `usage/<api>`: embeddings results have no output
    tokens and no batch (UsageEmbeddingsResult), completions results have both."""
    return {
        "object": "page",
        "data": [
            {
                "object": "bucket",
                "start_time": bucket.start_time,
                "end_time": bucket.end_time,
                "results": [_usage_result(result, api) for result in bucket.results],
            }
            for bucket in buckets
        ],
        "has_more": next_page is not None,
        "next_page": str(next_page) if next_page is not None else None,
    }


def _usage_result(result: UsageResult, api: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "object": f"organization.usage.{api}.result",
        "input_tokens": result.input_tokens,
        "num_model_requests": result.requests,
        "project_id": result.project_id,
        "user_id": None,
        "api_key_id": None,
        "model": result.model,
        "num_rate_limited_requests": result.rate_limited,  # chatgate's extension (docs/admin.md)
    }
    if api == COMPLETIONS:
        body |= {"output_tokens": result.output_tokens, "batch": None}
    return body
