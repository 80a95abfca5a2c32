"""Per-workspace settings the request path needs: rate-limit overrides per model.

Overrides are stored with the workspace (stores/workspaces_dynamodb.py) and cached per instance for
`CHATGATE_KEY_CACHE_SECONDS`: `chatgate workspaces limits set` takes effect on every instance within that
bound, and a warm request reads nothing. An override for model `*` applies to every model without one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from chatgate.clock import Clock, Stamp
from chatgate.limits.ratelimit import Limits

ALL_MODELS = "*"


class LimitsStore(Protocol):
    async def get_limits(self, workspace_id: str) -> dict[str, Limits]:
        """The workspace's overrides by model (ALL_MODELS for the workspace-wide one)."""
        ...


class WorkspaceDirectory:
    """Answers "which limits apply to this workspace and model", from a short-lived cache."""

    def __init__(
        self,
        store: LimitsStore,
        defaults: Limits,
        *,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._defaults = defaults
        self._cache_seconds = cache_seconds
        self._clock = Clock(monotonic=clock, wall=wall_clock)  # see chatgate.clock
        self._cache: dict[str, tuple[Stamp, dict[str, Limits]]] = {}

    async def limits(self, workspace_id: str, model: str) -> Limits:
        overrides = await self._overrides(workspace_id)
        return overrides.get(model) or overrides.get(ALL_MODELS) or self._defaults

    async def _overrides(self, workspace_id: str) -> dict[str, Limits]:
        now = self._clock.now()
        cached = self._cache.get(workspace_id)
        if cached is not None and not self._clock.passed(cached[0], self._cache_seconds, now):
            return cached[1]
        overrides = await self._store.get_limits(workspace_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[workspace_id] = (now, overrides)
        return overrides
