"""In-memory stand-ins for the adapters, so unit tests run the real app without AWS or sockets."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import httpx

from chatgate.gateway.auth import ApiKey, Authenticator, hash_key, new_key
from chatgate.gateway.ownership import MemoryOwnershipStore, ResponseOwnership
from chatgate.limits.ratelimit import AddResult, Counts, Limits, RateLimiter
from chatgate.limits.tokens import TokenUsage
from chatgate.limits.usage import UsageLedger, UsageRecord
from chatgate.limits.workspace_limits import WorkspaceDirectory
from chatgate.settings import Settings
from chatgate.upstream.azure import AzureOpenAI
from chatgate.upstream.config import UpstreamDirectory
from chatgate.wiring import Services


class MemoryKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}
        self.reads = 0
        self.touches: list[tuple[str, int]] = []

    async def get(self, key_id: str) -> ApiKey | None:
        self.reads += 1
        return self.keys.get(key_id)

    async def touch(self, key_id: str, now: int, *, older_than: int) -> bool:
        self.touches.append((key_id, now))
        key = self.keys.get(key_id)
        if key is None or (key.last_used_at is not None and key.last_used_at >= older_than):
            return False
        self.keys[key_id] = replace(key, last_used_at=now)
        return True

    def add(self, workspace_id: str, **fields: Any) -> str:
        key, key_id, _ = new_key()
        self.keys[key_id] = ApiKey(key_id=key_id, workspace_id=workspace_id, key_hash=hash_key(key), **fields)
        return key


class MemorySecrets:
    def __init__(self, values: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.values = dict(values or {})

    async def get_json(self, name: str) -> Mapping[str, Any] | None:
        return self.values.get(name)


class MemoryCounters:
    """A CounterStore in a dict (single event loop, so atomic by construction), markers included."""

    def __init__(self) -> None:
        self.counts: dict[str, Counts] = {}
        self.markers: set[tuple[str, str]] = set()

    async def try_add(
        self,
        key: str,
        *,
        requests: int,
        tokens: int,
        max_requests: int,
        max_tokens: int,
        expires_at: int,
        marker: str,
    ) -> AddResult:
        now = self.counts.get(key, Counts())
        if ("p", marker) in self.markers:
            return AddResult(True, now)
        if now.requests + requests > max_requests or now.tokens + tokens > max_tokens:
            return AddResult(False, now)
        self.counts[key] = Counts(now.requests + requests, now.tokens + tokens)
        self.markers.add(("p", marker))
        return AddResult(True, self.counts[key])

    async def settle(self, key: str, *, marker: str, requests: int, tokens: int) -> bool:
        if ("p", marker) not in self.markers:
            return False
        self.markers.discard(("p", marker))
        now = self.counts.get(key, Counts())
        self.counts[key] = Counts(now.requests + requests, now.tokens + tokens)
        return True

    async def add_tokens(self, key: str, tokens: int, *, expires_at: int, marker: str) -> bool:
        if ("o", marker) in self.markers:
            return False
        self.markers.add(("o", marker))
        now = self.counts.get(key, Counts())
        self.counts[key] = Counts(now.requests, now.tokens + tokens)
        return True

    async def read(self, key: str) -> Counts:
        return self.counts.get(key, Counts())


class MemoryUsage:
    """A UsageStore in a dict of UsageRecords."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], UsageRecord] = {}
        self.markers: set[str] = set()

    async def add(
        self,
        workspace_id: str,
        day: str,
        model: str,
        usage: TokenUsage,
        *,
        marker: str,
        api: str = "completions",
    ) -> bool:
        if marker in self.markers:
            return False
        self.markers.add(marker)
        old = self.records.get((workspace_id, day, model)) or UsageRecord(workspace_id, day, model, api=api)
        counted = usage.source == "counted"
        self.records[(workspace_id, day, model)] = UsageRecord(
            workspace_id,
            day,
            model,
            requests=old.requests + 1,
            prompt_tokens=old.prompt_tokens + usage.prompt_tokens,
            completion_tokens=old.completion_tokens + usage.completion_tokens,
            counted_requests=old.counted_requests + counted,
            counted_prompt_tokens=old.counted_prompt_tokens + (usage.prompt_tokens if counted else 0),
            counted_completion_tokens=old.counted_completion_tokens
            + (usage.completion_tokens if counted else 0),
            api=api,
            rate_limited=old.rate_limited,
        )
        return True

    async def add_refusals(
        self, workspace_id: str, day: str, model: str, count: int, *, marker: str, api: str
    ) -> bool:
        if marker in self.markers:
            return False
        self.markers.add(marker)
        old = self.records.get((workspace_id, day, model)) or UsageRecord(workspace_id, day, model, api=api)
        self.records[(workspace_id, day, model)] = replace(old, rate_limited=old.rate_limited + count)
        return True


class MemoryLimits:
    def __init__(self) -> None:
        self.limits: dict[str, dict[str, Limits]] = {}

    async def get_limits(self, workspace_id: str) -> dict[str, Limits]:
        return dict(self.limits.get(workspace_id, {}))


def azure_completion(model: str = "gpt-4o-2024-05-13") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "system_fingerprint": "fp_1",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "logprobs": None,
                "message": {"role": "assistant", "content": "hi"},
            }
        ],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9},
    }


def fake_services(
    handler: Callable[[httpx.Request], httpx.Response] | None = None,
    secrets: Mapping[str, Mapping[str, Any]] | None = None,
    **env: str,
) -> tuple[Services, MemoryKeyStore, list[httpx.Request]]:
    """Services over memory stores and an httpx MockTransport upstream; returns (services, keys, sent).
    `secrets` adds to the regions' upstream secrets (bring-your-own-keys ones, say)."""
    settings = Settings(**env)  # type: ignore[arg-type]
    sent: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return handler(request) if handler else httpx.Response(200, json=azure_completion())

    keys = MemoryKeyStore()
    upstreams = {
        settings.upstream_secret_name(region): {"endpoint": f"https://{region}.azure.test", "api_key": "k"}
        for region in settings.regions
    }
    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return memory_services(settings, keys, MemorySecrets({**upstreams, **(secrets or {})}), http), keys, sent


def memory_services(
    settings: Settings, keys: MemoryKeyStore, secrets: MemorySecrets, http: httpx.AsyncClient
) -> Services:
    """Real domain objects over in-memory stores: what a warm instance has, minus AWS."""
    return Services(
        settings=settings,
        authenticator=Authenticator(keys, cache_seconds=3600),
        upstreams=UpstreamDirectory(
            secrets,
            models=settings.allowed_models,
            secret_name=settings.upstream_secret_name,
            byok_secret_name=settings.byok_secret_name,
        ),
        workspaces=WorkspaceDirectory(MemoryLimits(), Limits.from_settings(settings)),
        limiter=RateLimiter.from_settings(MemoryCounters(), settings),
        usage=UsageLedger(usage := MemoryUsage(), refusals=usage),
        azure=AzureOpenAI(http),
        http=http,
        ownership=ResponseOwnership(MemoryOwnershipStore()),
    )
