"""The usage ledger: per workspace, model and UTC day, how many requests and tokens were used.

Records are added atomically (DynamoDB `ADD`, stores/usage_dynamodb.py) by chatgate.settlement, once per
request however often the write is retried or replayed (the request's marker), with the same numbers the
rate-limit reservation is corrected to, and say how much of the usage chatgate had to count
itself because Azure's own `usage` never came (a stream that failed or whose client went away first).
Each record also says which of OpenAI's usage endpoints it belongs to (`api`: `completions` for chat
completions and responses, `embeddings`), as OpenAI's Usage API splits usage; a model serves one of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.background import BackgroundWrites
from chatgate.ledger import UnsettledWrite
from chatgate.tokens import TokenUsage

logger = logging.getLogger(__name__)

COMPLETIONS, EMBEDDINGS = "completions", "embeddings"


def usage_api(api_name: str) -> str:
    """The usage endpoint of a request of the API `api_name` (chatgate.apis' adapter names)."""
    return EMBEDDINGS if api_name == "embeddings" else COMPLETIONS


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One workspace's usage of one model on one UTC day. The `counted_*` fields are the part of the
    totals that chatgate counted itself (Azure sent no usage); the rest is Azure's own `usage`."""

    workspace_id: str
    day: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    counted_requests: int = 0
    counted_prompt_tokens: int = 0
    counted_completion_tokens: int = 0
    # Upstream pools: requests and tokens per resource that answered (name -> (requests, total tokens)).
    resources: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    api: str = COMPLETIONS

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "model": self.model,
            "api": self.api,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "counted_requests": self.counted_requests,
            "counted_prompt_tokens": self.counted_prompt_tokens,
            "counted_completion_tokens": self.counted_completion_tokens,
            "resources": {
                name: {"requests": requests, "total_tokens": total}
                for name, (requests, total) in sorted(self.resources.items())
            },
        }


class UsageStore(Protocol):
    """Where usage records live (DynamoDB in production: stores/usage_dynamodb.py)."""

    async def add(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = COMPLETIONS,
    ) -> bool:
        """Atomically add one request's usage to the (workspace, day, model) record, creating it, once per
        marker (False: it already was)."""
        ...


class UsageLedger:
    """Adds finished requests to the usage records. Never raises (returns the write if it did not
    settle); a write in flight completes even if its caller is cancelled, and `drain()` waits for those
    still running (at shutdown, in tests)."""

    def __init__(self, store: UsageStore) -> None:
        self._store = store
        self._writes = BackgroundWrites()

    async def record(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = COMPLETIONS,
    ) -> list[UnsettledWrite]:
        return await self._writes.run(self._write(workspace_id, day, model, usage, marker, api))

    async def drain(self) -> None:
        await self._writes.drain()

    async def _write(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, marker: str, api: str
    ) -> list[UnsettledWrite]:
        try:
            await self._store.add(workspace_id, day, model, usage, marker=marker, api=api)
        except Exception as exc:
            return [
                UnsettledWrite.of(
                    "usage",
                    marker,
                    exc,
                    workspace_id=workspace_id,
                    day=day,
                    model=model,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    source=usage.source,
                    api=api,
                    # The pool's resource that answered, where TokenUsage carries one (upstream pools).
                    **({"resource": resource} if (resource := getattr(usage, "resource", None)) else {}),
                )
            ]
        return []
