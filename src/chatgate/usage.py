"""The usage ledger: per workspace, model and UTC day, how many requests and tokens were used.

Records are added atomically (DynamoDB `ADD`, stores/usage_dynamodb.py) by chatgate.settlement, with the
same numbers the rate-limit reservation is corrected to, and say how much of the usage chatgate had to count
itself because Azure's own `usage` never came (a stream that failed or whose client went away first).
Each record also says which of OpenAI's usage endpoints it belongs to (`api`: `completions` for chat
completions and responses, `embeddings`), as OpenAI's Usage API splits usage; a model serves one of them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

from chatgate.background import BackgroundWrites
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
        }


class UsageStore(Protocol):
    """Where usage records live (DynamoDB in production: stores/usage_dynamodb.py)."""

    async def add(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, api: str = COMPLETIONS
    ) -> None:
        """Atomically add one request's usage to the (workspace, day, model) record, creating it."""
        ...


class UsageLedger:
    """Adds finished requests to the usage records. Never raises; a write in flight completes even if
    its caller is cancelled, and `drain()` waits for those still running (at shutdown, in tests)."""

    def __init__(self, store: UsageStore) -> None:
        self._store = store
        self._writes = BackgroundWrites()

    async def record(
        self, workspace_id: str, day: str, model: str, usage: TokenUsage, api: str = COMPLETIONS
    ) -> None:
        await self._writes.run(self._write(workspace_id, day, model, usage, api))

    async def drain(self) -> None:
        await self._writes.drain()

    async def _write(self, workspace_id: str, day: str, model: str, usage: TokenUsage, api: str) -> None:
        try:
            await self._store.add(workspace_id, day, model, usage, api)
        except Exception as exc:
            logger.error(
                "usage record failed for workspace %s model %s day %s (%d prompt + %d completion tokens, "
                "%s): %s",
                workspace_id,
                model,
                day,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.source,
                exc,
            )
