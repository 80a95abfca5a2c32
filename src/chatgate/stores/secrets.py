"""Secrets Manager as a SecretSource: JSON secrets by name, with the cache the gateway needs.

Where the secret comes from (secret_reader() picks one, in this order):
1. the AWS Parameters and Secrets Lambda Extension, when the function has it (its HTTP port on localhost,
   `X-Aws-Parameters-Secrets-Token: $AWS_SESSION_TOKEN`): no signing, no TLS to Secrets Manager, and the
   extension keeps its own cache across the instance's life;
2. Secrets Manager's GetSecretValue, signed, through stores/aws.py (on httpx: no boto3 on Lambda);
3. a boto3 client, when one is handed in (tooling, tests), in a worker thread.

In front of it sits a small async cache, because the gateway needs three things a plain read does not do:
remembering that a secret does *not* exist (most workspaces have no bring-your-own-keys secret, and asking
again on every request would cost a Secrets Manager call each time), keeping a warm instance free of
Secrets Manager calls (one read per secret and `max_age`), and letting only one concurrent request refresh
an expired entry.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from chatgate.clock import Clock, Stamp
from chatgate.errors import ServiceUnavailable
from chatgate.stores.aws import AwsError, AwsJsonClient, AwsUnreachable, json_caller
from chatgate.upstream.transport import HttpClient

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
        client: SecretReader | AwsJsonClient | Any,
        *,
        max_age: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._reader: SecretReader = (
            client if isinstance(client, ExtensionSecretReader) else _ApiSecretReader(client)
        )
        self._max_age = max_age
        self._clock = Clock(monotonic=clock, wall=wall_clock)  # see chatgate.clock
        self._cache: dict[str, tuple[Stamp, Mapping[str, Any] | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get_json(self, name: str) -> Mapping[str, Any] | None:
        cached = self._cache.get(name)
        if cached is not None and not self._clock.passed(cached[0], self._max_age):
            return cached[1]
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            cached = self._cache.get(name)
            if cached is not None and not self._clock.passed(cached[0], self._max_age):
                return cached[1]
            value = await self._fetch(name)
            if len(self._cache) >= _CACHE_MAX_ENTRIES:
                self._cache.clear()
                self._locks = {name: lock}
            self._cache[name] = (self._clock.now(), value)
            return value

    def invalidate(self, name: str | None = None) -> None:
        """Forget one cached secret (or all), e.g. right after an admin changed it in-process."""
        if name is None:
            self._cache.clear()
        else:
            self._cache.pop(name, None)

    async def _fetch(self, name: str) -> Mapping[str, Any] | None:
        try:
            answer = await self._reader.get_secret_value(name)
        except AwsError as exc:
            if _is_not_found(exc):
                return None
            logger.error("reading secret %s failed: %s", name, exc.code)
            raise _unavailable() from None
        except AwsUnreachable as exc:
            logger.error("reading secret %s failed: %s", name, exc)
            raise _unavailable() from None
        try:
            value = json.loads(answer.get("SecretString") or "")
        except ValueError:
            logger.error("secret %s does not hold JSON", name)
            return {}
        if not isinstance(value, Mapping):
            logger.error("secret %s does not hold a JSON object", name)
            return {}
        return value


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Configuration is temporarily unavailable. Please retry shortly.", headers={"retry-after": "1"}
    )


def _is_not_found(exc: AwsError) -> bool:
    """No such secret, or one scheduled for deletion (Secrets Manager refuses to read it until it is
    restored): either way, nothing to use."""
    deleted = exc.code == "InvalidRequestException" and "delet" in exc.message.lower()
    return exc.code == "ResourceNotFoundException" or deleted


class SecretReader(Protocol):
    async def get_secret_value(self, name: str) -> Mapping[str, Any]:
        """GetSecretValue's answer ({"SecretString": ...}); AwsError / AwsUnreachable otherwise."""
        ...


class _ApiSecretReader:
    """GetSecretValue through an AwsJsonClient, or a boto3 client in a worker thread."""

    def __init__(self, client: Any) -> None:
        self._call = json_caller(client).call

    async def get_secret_value(self, name: str) -> Mapping[str, Any]:
        return await self._call("GetSecretValue", {"SecretId": name})


# The extension's documented defaults: port 2773 (PARAMETERS_SECRETS_EXTENSION_HTTP_PORT); Lambda puts
# external extensions under /opt/extensions.
EXTENSION_FILE = "/opt/extensions/AWSParametersAndSecretsLambdaExtension"
EXTENSION_DEFAULT_PORT = 2773


class ExtensionSecretReader:
    """The AWS Parameters and Secrets Lambda Extension: GET /secretsmanager/get?secretId=<name> on
    localhost, authenticated by the function's session token; it answers GetSecretValue's JSON."""

    def __init__(self, http: HttpClient, *, port: int, token: str) -> None:
        self._http = http
        self._base = f"http://localhost:{port}/secretsmanager/get?secretId="
        self._headers = {"X-Aws-Parameters-Secrets-Token": token}

    async def get_secret_value(self, name: str) -> Mapping[str, Any]:
        try:
            response = await self._http.get(self._base + quote(name, safe=""), headers=self._headers)
        except httpx.HTTPError as exc:
            raise AwsUnreachable(type(exc).__name__) from None
        if response.status_code == 200:
            answer: dict[str, Any] = response.json()
            return answer
        text = response.text
        # The extension passes Secrets Manager's error through as text (e.g. "... ResourceNotFoundException
        # ... Secrets Manager can't find the specified secret."), with 400 or 404.
        for code in ("ResourceNotFoundException", "InvalidRequestException", "AccessDeniedException"):
            if code in text:
                raise AwsError(code, response.status_code, {"message": text[:500]})
        raise AwsError(f"HTTP{response.status_code}", response.status_code, {"message": text[:500]})


def extension_port() -> int | None:
    """The extension's port when this function has it (and a session token to present), else None."""
    configured = os.environ.get("PARAMETERS_SECRETS_EXTENSION_HTTP_PORT")
    if not os.environ.get("AWS_SESSION_TOKEN"):
        return None
    if configured:
        return int(configured)
    return EXTENSION_DEFAULT_PORT if os.path.exists(EXTENSION_FILE) else None


def secret_reader(http: HttpClient, api: AwsJsonClient) -> SecretReader | AwsJsonClient:
    """What SecretsManagerSource should read through on this instance (see the module docstring)."""
    port = extension_port()
    if port is not None and not os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER"):
        return ExtensionSecretReader(http, port=port, token=os.environ["AWS_SESSION_TOKEN"])
    return api
