"""Per-model rate limits of a workspace (OpenAI's project rate limits): read, set, remove. Audited.

A workspace's limits are its overrides (per model, or `*` for every model without one) over the stack's
defaults (CHATGATE_RPM_LIMIT / CHATGATE_TPM_LIMIT). The unit is the stack's window
(CHATGATE_RATE_WINDOW_SECONDS, 60 s by default: then "per minute" is exact). Changing limits is an
organisation operation: a workspace admin may read its limits, not raise them. Changes take effect within
`CHATGATE_KEY_CACHE_SECONDS` on every instance (chatgate.limits.workspace_limits caches them that long).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chatgate.admin import audit
from chatgate.admin.control import Actor, ControlStore
from chatgate.admin.workspaces import changeable, ensure_workspace, organisation_only, visible
from chatgate.errors import InvalidRequest, NotFound
from chatgate.limits.ratelimit import Limits
from chatgate.limits.workspace_limits import ALL_MODELS

RATE_LIMIT_PREFIX = "rl-"
MODEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}|\*")


def rate_limit_id(model: str) -> str:
    return f"{RATE_LIMIT_PREFIX}{model}"


async def list_limits(
    store: ControlStore, actor: Actor, workspace_id: str, models: Sequence[str], defaults: Limits
) -> list[tuple[str, Limits]]:
    """The limits in force for each of the stack's models, then any other model the workspace has an
    override for (a bring-your-own-keys model, `*`)."""
    await visible(store, actor, workspace_id)
    overrides = await store.get_limits(workspace_id)
    fallback = overrides.get(ALL_MODELS) or defaults
    listed = [(model, overrides.get(model) or fallback) for model in models]
    extra = sorted(model for model in overrides if model not in models)
    return listed + [(model, overrides[model]) for model in extra]


def model_of(limit_id: str) -> str:
    model = limit_id.removeprefix(RATE_LIMIT_PREFIX)
    if not limit_id.startswith(RATE_LIMIT_PREFIX) or not MODEL_NAME.fullmatch(model):
        raise NotFound(f"No rate limit found with id '{limit_id}'.", param="rate_limit_id", code="not_found")
    return model


async def set_limits(
    store: ControlStore,
    actor: Actor,
    workspace_id: str,
    model: str,
    *,
    requests: int | None,
    tokens: int | None,
    defaults: Limits,
) -> Limits:
    """Override the workspace's limits for one model; a value not given keeps the one in force."""
    if actor.kind == "cli":
        workspace = await ensure_workspace(store, actor, workspace_id)
    else:
        workspace = await changeable(store, actor, workspace_id)
    organisation_only(actor, "change rate limits")
    overrides = await store.get_limits(workspace_id)
    current = overrides.get(model) or overrides.get(ALL_MODELS) or defaults
    if not MODEL_NAME.fullmatch(model):
        raise InvalidRequest(f"'{model}' is not a model name.", param="model", code="invalid_value")
    limits = Limits(
        requests=current.requests if requests is None else requests,
        tokens=current.tokens if tokens is None else tokens,
    )
    changes = {
        "max_requests_per_1_minute": limits.requests,
        "max_tokens_per_1_minute": limits.tokens,
    }
    change = audit.entry(
        actor,
        "rate_limit.updated",
        project=workspace,
        details={"id": rate_limit_id(model), "changes_requested": changes},
    )
    await store.set_limits(workspace_id, model, limits, change)
    return limits


async def remove_limits(store: ControlStore, actor: Actor, workspace_id: str, model: str) -> bool:
    """Back to the defaults for that model; False if there was no override."""
    await visible(store, actor, workspace_id)
    organisation_only(actor, "change rate limits")
    change = audit.entry(
        actor, "rate_limit.deleted", project=workspace_id, details={"id": rate_limit_id(model)}
    )
    return await store.delete_limits(workspace_id, model, change)
