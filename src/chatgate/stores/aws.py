"""AWS's JSON protocol (DynamoDB, Secrets Manager) on the already-loaded httpx: the request path's AWS client.

Why not boto3 on the request path: importing boto3 costs about 350 ms of every cold start, and its blocking
calls need a worker thread each (a thread hop per DynamoDB call on the hot path). DynamoDB and Secrets
Manager speak a small protocol: one signed `POST /` with `X-Amz-Target: <Service>.<Action>` and a JSON body,
answered with JSON (errors carry `__type` and `message`). Signature Version 4 for it is the function
`sign()` below; tests/unit/test_aws_json.py checks it byte for byte against botocore's own signer.

Configuration is boto3's, read the same way:
- endpoint: `AWS_ENDPOINT_URL_<SERVICE>` (DYNAMODB, SECRETS_MANAGER), then `AWS_ENDPOINT_URL`, else the
  regional AWS endpoint (`chatgate dev` and the tests point at moto / dynalite this way);
- region: `AWS_REGION`, then `AWS_DEFAULT_REGION`;
- credentials: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN` (what Lambda provides).
  Without them (a laptop with an AWS profile, SSO, a container role) botocore's resolver runs in a worker
  thread, never on the event loop: once, and again before expiring credentials expire (once per refresh,
  however many calls wait for it).

Retries (one design for reads and writes, as botocore's standard mode): throttling codes, 5xx answers,
a 200 whose body is not JSON or fails DynamoDB's `x-amz-crc32`, connection errors, broken (reused)
connections and read timeouts are retried with exponential backoff and full jitter, at most
`RetryPolicy.attempts` times and within its time budget. A retried write must be idempotent: chatgate's
writes carry a per-request marker under a condition (stores/ratelimit_dynamodb.py, stores/usage_dynamodb.py),
so sending one twice has the effect of once.

Errors become `AwsError` (the service's error code, the decoded body for callers that need it, e.g. the
item of a failed conditional write) or `AwsUnreachable`; adapters translate them, as they did ClientError.
Both say whether the request may have been applied (`maybe_applied`): a write whose outcome is unknown is
logged as "unknown", never as "failed".
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from chatgate.stores.aws_retry import NOT_SENT, READ, RetryPolicy, retryable_answer
from chatgate.upstream.transport import Client, HttpClient, Transport, tls_context

__all__ = [
    "READ",
    "AwsError",
    "AwsJsonClient",
    "AwsUnreachable",
    "Credentials",
    "RetryPolicy",
    "Service",
    "sign",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Service:
    """What differs between JSON-protocol services."""

    signing_name: str  # the SigV4 scope's service name and the default endpoint's host prefix
    target_prefix: str  # X-Amz-Target = <prefix>.<Action>
    content_type: str  # application/x-amz-json-1.0 or 1.1
    env_suffix: str  # AWS_ENDPOINT_URL_<suffix>


DYNAMODB = Service("dynamodb", "DynamoDB_20120810", "application/x-amz-json-1.0", "DYNAMODB")
SECRETS_MANAGER = Service("secretsmanager", "secretsmanager", "application/x-amz-json-1.1", "SECRETS_MANAGER")


class AwsError(Exception):
    """The service answered with an error: `code` is its short name (e.g. ConditionalCheckFailedException)."""

    def __init__(
        self, code: str, status: int, body: Mapping[str, Any], *, maybe_applied: bool = False
    ) -> None:
        super().__init__(f"{code} (HTTP {status})")
        self.code = code
        self.status = status
        self.body = body
        # A 5xx, a garbled 200: the service may have applied the request.
        self.maybe_applied = maybe_applied

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("Message") or "")

    @property
    def retryable(self) -> bool:
        return retryable_answer(self.code, self.status) or self.maybe_applied


class AwsUnreachable(Exception):
    """No answer: connection refused, timeout, reset. The message is the exception type only.
    `maybe_applied` is False only when the request provably never left (no connection could be made)."""

    def __init__(self, message: str, *, maybe_applied: bool = True) -> None:
        super().__init__(message)
        self.maybe_applied = maybe_applied


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    @classmethod
    def from_env(cls) -> Credentials | None:
        key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        return cls(key, secret, os.environ.get("AWS_SESSION_TOKEN") or None)


# Refresh expiring credentials this long before they expire (botocore refreshes 15 minutes before, and
# insists 10 minutes before).
REFRESH_BEFORE_SECONDS = 15 * 60


def _botocore_credentials(resolved: Any = None) -> tuple[Credentials, Any, float | None]:
    """Profiles, SSO, container and instance roles: botocore's resolver (blocking: run it in a thread),
    only where the environment has no keys. Returns the credentials, botocore's object (kept: it knows how
    to refresh itself) and when to refresh them (wall-clock seconds; None: they do not expire)."""
    if resolved is None:
        import botocore.session

        resolved = botocore.session.get_session().get_credentials()
        if resolved is None:
            raise AwsUnreachable("NoCredentialsError", maybe_applied=False)
    frozen = resolved.get_frozen_credentials()  # refreshes refreshable credentials when due
    expiry = getattr(resolved, "_expiry_time", None)
    refresh_at = expiry.timestamp() - REFRESH_BEFORE_SECONDS if expiry is not None else None
    return Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token), resolved, refresh_at


def region_from_env() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def endpoint_from_env(service: Service, region: str) -> str:
    return (
        os.environ.get(f"AWS_ENDPOINT_URL_{service.env_suffix}")
        or os.environ.get("AWS_ENDPOINT_URL")
        or f"https://{service.signing_name}.{region}.amazonaws.com"
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    *,
    credentials: Credentials,
    service: Service,
    region: str,
    host: str,
    target: str,
    body: bytes,
    now: float,
) -> dict[str, str]:
    """The headers of a SigV4-signed `POST /` (AWS JSON protocol): Signature Version 4 as documented, for
    a request with no query string whose signed headers are content-type, host, x-amz-date, x-amz-target
    (and x-amz-security-token with temporary credentials)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    day = stamp[:8]
    headers = {
        "content-type": service.content_type,
        "host": host,
        "x-amz-date": stamp,
        "x-amz-target": target,
    }
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    names = sorted(headers)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            "".join(f"{name}:{headers[name]}\n" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{region}/{service.signing_name}/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), day), region), service.signing_name),
        "aws4_request",
    )
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    del headers["host"]  # httpx sends it from the URL, exactly as signed
    return headers


class AwsJsonClient:
    """One JSON-protocol service through a pooled HTTP client: `await client.call(action, payload)`."""

    def __init__(
        self,
        service: Service,
        http: HttpClient,
        *,
        region: str | None = None,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        self.service = service
        self.region = region or region_from_env()
        self.endpoint = httpx.URL(endpoint or endpoint_from_env(service, self.region))
        self._url = self.endpoint.copy_with(path="/", query=None)
        self._host = self._url.netloc.decode("ascii")
        self._credentials = credentials or Credentials.from_env()
        self._resolved: Any = None  # botocore's credentials object, when botocore resolved them
        self._refresh_at: float | None = None
        self._resolving: asyncio.Lock | None = None
        self._http = http

    async def credentials(self) -> Credentials:
        """The credentials to sign with: the environment's, else botocore's, resolved in a worker thread
        the first time and again once `REFRESH_BEFORE_SECONDS` before they expire (one thread for all the
        calls waiting)."""
        if self._credentials is not None and (self._refresh_at is None or time.time() < self._refresh_at):
            return self._credentials
        if self._resolving is None:
            self._resolving = asyncio.Lock()
        async with self._resolving:
            if self._credentials is None or (
                self._refresh_at is not None and time.time() >= self._refresh_at
            ):
                resolved = await asyncio.to_thread(_botocore_credentials, self._resolved)
                self._credentials, self._resolved, self._refresh_at = resolved
        assert self._credentials is not None
        return self._credentials

    async def call(
        self, action: str, payload: Mapping[str, Any], *, policy: RetryPolicy = READ
    ) -> dict[str, Any]:
        """The decoded answer of one action; AwsError / AwsUnreachable otherwise, after retrying what
        botocore's standard mode retries, as `policy` says (module docstring). The error raised says
        `maybe_applied` if any attempt may have been applied."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        target = f"{self.service.target_prefix}.{action}"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + policy.budget
        maybe_applied = False
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout_at(deadline):
                    return await self._attempt(target, body)
            except TimeoutError:
                error: AwsError | AwsUnreachable = AwsUnreachable("TimeoutError")  # the budget ran out
            except (AwsError, AwsUnreachable) as exc:
                error = exc
            maybe_applied = maybe_applied or error.maybe_applied
            retryable = not isinstance(error, AwsError) or error.retryable
            pause = policy.pause(attempt)
            if not retryable or attempt >= policy.attempts or loop.time() + pause >= deadline:
                error.maybe_applied = maybe_applied
                raise error
            logger.debug("AWS %s attempt %d failed (%s); retrying in %.3f s", action, attempt, error, pause)
            await asyncio.sleep(pause)

    async def _attempt(self, target: str, body: bytes) -> dict[str, Any]:
        headers = sign(
            credentials=await self.credentials(),
            service=self.service,
            region=self.region,
            host=self._host,
            target=target,
            body=body,
            now=time.time(),
        )
        try:
            response = await self._http.post(self._url, content=body, headers=headers)
        except NOT_SENT as exc:
            raise AwsUnreachable(type(exc).__name__, maybe_applied=False) from None
        except httpx.HTTPError as exc:  # reset, broken reused connection, read timeout: sent, perhaps applied
            raise AwsUnreachable(type(exc).__name__) from None
        expected = response.headers.get("x-amz-crc32")
        if expected is not None and expected != str(zlib.crc32(response.content)):
            # botocore retries a body that fails its checksum; the request may have been applied.
            raise AwsError("CRC32CheckFailed", response.status_code, {}, maybe_applied=True)
        if response.status_code != 200:
            raise _error(response)
        try:
            answer = json.loads(response.content)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise AwsError(
                "InvalidResponse",
                200,
                {"message": "a 200 answer whose body is not a JSON object"},
                maybe_applied=True,
            )
        return answer


def _error(response: httpx.Response) -> AwsError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    kind = str(body.get("__type") or response.headers.get("x-amzn-errortype") or "")
    code = kind.rsplit("#", 1)[-1].split(":", 1)[0] or f"HTTP{response.status_code}"
    return AwsError(code, response.status_code, body, maybe_applied=response.status_code >= 500)


def aws_http_client(
    *, connect_timeout: float = 2.0, read_timeout: float = 5.0, verify: ssl.SSLContext | bool = True
) -> Client:
    """The pool AWS calls share: short timeouts (a request must not hang on AWS), keep-alive
    (chatgate.upstream.transport)."""
    return Client(
        Transport(ssl_context=tls_context(verify), max_connections=64, keepalive_expiry=50),
        httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
    )


class Boto3Json:
    """The same `call(action, payload)` over a boto3 client (in a worker thread), so that an adapter takes
    either: the CLI, `chatgate dev` tooling and older tests hand the stores a boto3 client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(
        self, action: str, payload: Mapping[str, Any], *, policy: RetryPolicy = READ
    ) -> dict[str, Any]:
        """boto3 retries by its own configuration; `policy` is accepted for the same signature."""
        return await asyncio.to_thread(self.call_now, action, payload)

    def call_now(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self.client, "".join("_" + c.lower() if c.isupper() else c for c in action)[1:])
        try:
            answer: dict[str, Any] = method(**payload)
        except ClientError as exc:
            response: dict[str, Any] = dict(exc.response)
            error = response.pop("Error", {}) or {}
            status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
            body = {**response, "message": error.get("Message", "")}
            raise AwsError(str(error.get("Code", "Unknown")), status, body) from None
        except BotoCoreError as exc:
            from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError

            never_sent = isinstance(exc, EndpointConnectionError | ConnectTimeoutError)
            raise AwsUnreachable(type(exc).__name__, maybe_applied=not never_sent) from None
        return answer


def json_caller(client: Any) -> AwsJsonClient | Boto3Json:
    """An AwsJsonClient as it is, a boto3 client wrapped (see Boto3Json)."""
    if isinstance(client, AwsJsonClient | Boto3Json):
        return client
    return Boto3Json(client)
