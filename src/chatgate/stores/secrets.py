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

# Distinct secret names remembered per instance (the stack's upstreams plus one BYOK lookup per workspace
# and region); past this the cache starts over rather than grow without bound.
_CACHE_MAX_ENTRIES = 10_000


class SecretsManagerSource:
    """JSON secrets by name, cached for `max_age` seconds (found or not found).

    None means "no such secret" (or one scheduled for deletion); a secret whose value is not a JSON
    object reads as an empty mapping, so callers can tell "absent" from "present but unusable"."""

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
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
                self._locks = {name: lock}
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
            return {}
        except GetParameterError as exc:
            if _is_not_found(exc):
                return None
            logger.error("reading secret %s failed: %s", name, _error_code(exc))
            raise ServiceUnavailable(
                "Configuration is temporarily unavailable. Please retry shortly.",
                headers={"retry-after": "1"},
            ) from None
        if not isinstance(value, Mapping):
            logger.error("secret %s does not hold a JSON object", name)
            return {}
        return value


def _botocore_error(exc: BaseException) -> BaseException | None:
    """The ClientError behind Powertools' GetParameterError (raised while handling it, not chained)."""
    return exc.__cause__ or exc.__context__


def _error(exc: BaseException) -> dict[str, Any]:
    response = getattr(_botocore_error(exc), "response", None)
    error = response.get("Error") if isinstance(response, dict) else None
    return error if isinstance(error, dict) else {}


def _error_code(exc: BaseException) -> str:
    return str(_error(exc).get("Code") or type(_botocore_error(exc) or exc).__name__)


def _is_not_found(exc: BaseException) -> bool:
    """No such secret, or one scheduled for deletion (Secrets Manager refuses to read it until it is
    restored): either way, nothing to use."""
    error = _error(exc)
    if not error:
        return "ResourceNotFoundException" in str(exc)
    code, message = error.get("Code"), str(error.get("Message", "")).lower()
    return code == "ResourceNotFoundException" or (code == "InvalidRequestException" and "delet" in message)
