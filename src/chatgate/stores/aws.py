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
  Without them (a laptop with an AWS profile) botocore's resolver is imported, once, on the first call.

Errors become `AwsError` (the service's error code, the decoded body for callers that need it, e.g. the
item of a failed conditional write) or `AwsUnreachable`; adapters translate them, as they did ClientError.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from chatgate.transport import Client, HttpClient, Transport, tls_context

__all__ = ["AwsError", "AwsJsonClient", "AwsUnreachable", "Credentials", "Service", "sign"]


@dataclass(frozen=True)
class Service:
    """What differs between JSON-protocol services."""

    signing_name: str  # the SigV4 scope's service name and the default endpoint's host prefix
    target_prefix: str  # X-Amz-Target = <prefix>.<Action>
    content_type: str  # application/x-amz-json-1.0 or 1.1
    env_suffix: str  # AWS_ENDPOINT_URL_<suffix>


DYNAMODB = Service("dynamodb", "DynamoDB_20120810", "application/x-amz-json-1.0", "DYNAMODB")
SECRETS_MANAGER = Service("secretsmanager", "secretsmanager", "application/x-amz-json-1.1", "SECRETS_MANAGER")

# Retried once (after a short pause), as botocore's standard mode would: throttling and the service's own
# transient failures. Everything else is the caller's answer.
_RETRYABLE = frozenset(
    {
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


class AwsError(Exception):
    """The service answered with an error: `code` is its short name (e.g. ConditionalCheckFailedException)."""

    def __init__(self, code: str, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(f"{code} (HTTP {status})")
        self.code = code
        self.status = status
        self.body = body

    @property
    def message(self) -> str:
        return str(self.body.get("message") or self.body.get("Message") or "")


class AwsUnreachable(Exception):
    """No answer: connection refused, timeout, reset. The message is the exception type only."""


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


def _botocore_credentials() -> Credentials:
    """Profiles, SSO, instance roles: botocore's resolver, only where the environment has no keys."""
    import botocore.session

    resolved = botocore.session.get_session().get_credentials()
    if resolved is None:
        raise AwsUnreachable("NoCredentialsError")
    frozen = resolved.get_frozen_credentials()
    return Credentials(str(frozen.access_key), str(frozen.secret_key), frozen.token)


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
        self._credentials = credentials
        self._http = http

    def credentials(self) -> Credentials:
        if self._credentials is None:
            self._credentials = Credentials.from_env() or _botocore_credentials()
        return self._credentials

    async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The decoded answer of one action; AwsError / AwsUnreachable otherwise (one retry when the
        connection could not be made or the service asked to slow down)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        target = f"{self.service.target_prefix}.{action}"
        for attempt in (1, 2):
            headers = sign(
                credentials=self.credentials(),
                service=self.service,
                region=self.region,
                host=self._host,
                target=target,
                body=body,
                now=time.time(),
            )
            try:
                response = await self._http.post(self._url, content=body, headers=headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt == 1:
                    continue
                raise AwsUnreachable(type(exc).__name__) from None
            except httpx.HTTPError as exc:
                raise AwsUnreachable(type(exc).__name__) from None
            if response.status_code == 200:
                answer: dict[str, Any] = response.json()
                return answer
            error = _error(response)
            if attempt == 1 and (error.code in _RETRYABLE or error.status >= 500):
                await asyncio.sleep(0.025)
                continue
            raise error
        raise AssertionError("unreachable")  # pragma: no cover


def _error(response: httpx.Response) -> AwsError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    kind = str(body.get("__type") or response.headers.get("x-amzn-errortype") or "")
    code = kind.rsplit("#", 1)[-1].split(":", 1)[0] or f"HTTP{response.status_code}"
    return AwsError(code, response.status_code, body)


def aws_http_client(
    *, connect_timeout: float = 2.0, read_timeout: float = 5.0, verify: ssl.SSLContext | bool = True
) -> Client:
    """The pool AWS calls share: short timeouts (a request must not hang on AWS), keep-alive
    (chatgate.transport)."""
    return Client(
        Transport(ssl_context=tls_context(verify), max_connections=64, keepalive_expiry=50),
        httpx.Timeout(read_timeout, connect=connect_timeout, pool=connect_timeout),
    )


class Boto3Json:
    """The same `call(action, payload)` over a boto3 client (in a worker thread), so that an adapter takes
    either: the CLI, `chatgate dev` tooling and older tests hand the stores a boto3 client."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def call(self, action: str, payload: Mapping[str, Any]) -> dict[str, Any]:
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
            raise AwsUnreachable(type(exc).__name__) from None
        return answer


def json_caller(client: Any) -> AwsJsonClient | Boto3Json:
    """An AwsJsonClient as it is, a boto3 client wrapped (see Boto3Json)."""
    if isinstance(client, AwsJsonClient | Boto3Json):
        return client
    return Boto3Json(client)
