"""Secrets Manager as a SecretSource: Powertools Parameters fetches and decodes, this adds what it lacks.

Powertools' SecretsProvider reads a secret and transforms it from JSON. In front of it sits a small async
cache of our own, because the gateway needs three things Powertools does not do: remembering that a secret
does *not* exist (most workspaces have no bring-your-own-keys secret, and asking again on every request
would cost a Secrets Manager call each time), keeping the blocking boto3 call off the event loop, and
letting only one concurrent request refresh an expired entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chatgate.errors import ServiceUnavailable

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger(__name__)


class SecretsManagerSource:
    """JSON secrets by name, cached for `max_age` seconds (found or not found)."""

    def __init__(
        self,
        client: SecretsManagerClient,
        *,
        max_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self._client = client
        self._provider = SecretsProvider(boto3_client=client)
        self._max_age = max_age
        self._clock = clock
        self._cache: dict[str, tuple[float, Mapping[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get_json(self, name: str) -> Mapping[str, Any] | None:
        cached = self._cache.get(name)
        if cached is not None and self._clock() - cached[0] < self._max_age:
            return cached[1]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            cached = self._cache.get(name)
            if cached is not None and self._clock() - cached[0] < self._max_age:
                return cached[1]
            value = await asyncio.to_thread(self._fetch, name)
            self._cache[name] = (self._clock(), value)
            return value

    def invalidate(self, name: str | None = None) -> None:
        """Forget one cached secret (or all), e.g. right after an admin changed it in-process."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    def _fetch(self, name: str) -> Mapping[str, Any] | None:
        from aws_lambda_powertools.utilities.parameters.exceptions import (
            GetParameterError,
            TransformParameterError,
        )

        try:
            value = self._provider.get(name, transform="json", max_age=0, force_fetch=True)
        except TransformParameterError:
            logger.error("secret %s does not hold JSON", name)
            return None
        except GetParameterError as exc:
            if _is_not_found(exc):
                return None
            logger.error("reading secret %s failed: %s", name, type(exc.__cause__).__name__)
            raise ServiceUnavailable(
                "Configuration is temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from None
        return value if isinstance(value, Mapping) else None


def _is_not_found(exc: BaseException) -> bool:
    cause = exc.__cause__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return code in ("ResourceNotFoundException",)
    return "ResourceNotFoundException" in str(exc)
