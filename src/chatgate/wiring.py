"""The only place that builds clients (httpx for Azure and for AWS, boto3 for tooling) and the services.

Called once per cold start from the app's lifespan, never at import time. The request path talks to
DynamoDB and Secrets Manager through stores/aws.py on httpx (already loaded for the upstream), so serving a
request never imports boto3 (about 350 ms of a cold start). boto3 stays for the CLI and `chatgate dev`'s
tooling (`aws_clients`). Both honour the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_DYNAMODB` /
`AWS_ENDPOINT_URL_SECRETS_MANAGER` variables, which is how `chatgate dev` and the tests point them at an
emulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from chatgate.admin.admin_keys import AdminAuthenticator
from chatgate.admin.control import ControlStore
from chatgate.admin.usage import UsageReader
from chatgate.gateway.auth import Authenticator
from chatgate.gateway.ownership import ResponseOwnership
from chatgate.limits.ratelimit import Limits, RateLimiter
from chatgate.limits.usage import UsageLedger
from chatgate.limits.workspace_limits import WorkspaceDirectory
from chatgate.settings import Settings
from chatgate.upstream.azure import AzureOpenAI
from chatgate.upstream.config import UpstreamDirectory, byok_endpoint_policy
from chatgate.upstream.pool import PoolHealth
from chatgate.upstream.transport import Client, HttpClient, Transport, tls_context

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient


@dataclass
class Services:
    """Everything a request needs, built once per instance."""

    settings: Settings
    authenticator: Authenticator
    upstreams: UpstreamDirectory
    workspaces: WorkspaceDirectory
    limiter: RateLimiter
    usage: UsageLedger
    azure: AzureOpenAI
    http: HttpClient
    ownership: ResponseOwnership  # who owns each stored Responses API response
    aws_http: HttpClient | None = None
    # Which resources of each pool are cooling down on this instance, and the failover loop.
    pools: PoolHealth = field(default_factory=PoolHealth)
    # The control plane and the admin API (chatgate.admin): None where a test builds Services without them.
    control: ControlStore | None = None
    admin_auth: AdminAuthenticator | None = None
    usage_records: UsageReader | None = None
    byok_admin: Any = None  # the BYOK secrets' store, built on the first BYOK admin call (boto3)

    async def drain(self) -> None:
        """Wait for settlement writes still in flight (they run shielded, so a cancelled request's
        writes may outlive it)."""
        await asyncio.gather(self.limiter.drain(), self.usage.drain(), self.authenticator.drain())

    async def aclose(self, grace_seconds: float | None = None) -> None:
        """At shutdown: let settlements in flight complete (at most `grace_seconds`), then close."""
        try:
            await asyncio.wait_for(self.drain(), grace_seconds)
        except TimeoutError:
            logging.getLogger(__name__).error(
                "shutdown: settlement writes still in flight after %.1f s were abandoned", grace_seconds
            )
        await self.http.aclose()
        if self.aws_http is not None:
            await self.aws_http.aclose()


# botocore logs whole request and response bodies at DEBUG: Secrets Manager values (Azure keys) would be
# in them. Its loggers never go below INFO, whatever level the root logger or CHATGATE_LOG_LEVEL asks for.
_AWS_LOGGERS = ("botocore", "boto3")


def keep_secrets_out_of_aws_debug_logs() -> None:
    for name in _AWS_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # NOTSET (inherit) included
            logger.setLevel(logging.INFO)


def aws_clients(settings: Settings) -> tuple[DynamoDBClient, SecretsManagerClient]:
    """boto3 clients with short timeouts and few retries: a request must not hang on AWS."""
    import boto3
    from botocore.config import Config

    keep_secrets_out_of_aws_debug_logs()

    config = Config(
        connect_timeout=2,
        read_timeout=5,
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=50,
    )
    session = boto3.session.Session()
    return session.client("dynamodb", config=config), session.client("secretsmanager", config=config)


def http_client(settings: Settings, verify: ssl.SSLContext | bool = True) -> Client:
    """The upstream HTTP client: pooled, keep-alive, explicit timeouts (chatgate.upstream.transport)."""
    return Client(
        Transport(
            ssl_context=tls_context(verify),
            max_connections=settings.upstream_max_connections,
            keepalive_expiry=60,
        ),
        httpx.Timeout(
            settings.upstream_timeout_seconds,
            connect=settings.upstream_connect_timeout_seconds,
            pool=settings.upstream_connect_timeout_seconds,
        ),
    )


def build_services(settings: Settings) -> Services:
    from chatgate.stores.aws import DYNAMODB, SECRETS_MANAGER, AwsJsonClient, aws_http_client
    from chatgate.stores.control_dynamodb import DynamoDBControlStore
    from chatgate.stores.keys_dynamodb import DynamoDBKeyStore
    from chatgate.stores.markers import SETTLE
    from chatgate.stores.ownership_dynamodb import DynamoDBOwnershipStore
    from chatgate.stores.ratelimit_dynamodb import DynamoDBCounterStore
    from chatgate.stores.secrets import SecretsManagerSource, secret_reader
    from chatgate.stores.usage_dynamodb import DynamoDBUsageStore
    from chatgate.stores.workspaces_dynamodb import DynamoDBWorkspaceStore

    # One TLS context (CA bundle loaded once) for both pools: each httpx client would otherwise build its own.
    tls = httpx.create_ssl_context()
    aws_http = aws_http_client(verify=tls)
    dynamodb = AwsJsonClient(DYNAMODB, aws_http)
    secrets = SecretsManagerSource(
        secret_reader(aws_http, AwsJsonClient(SECRETS_MANAGER, aws_http)),
        max_age=settings.secret_max_age_seconds,
    )
    http = http_client(settings, verify=tls)
    settle = dataclasses.replace(SETTLE, budget=settings.settlement_budget_seconds)
    control = DynamoDBControlStore(dynamodb, settings.control_table_name)
    usage_records = DynamoDBUsageStore(dynamodb, settings.table_name, settle_policy=settle)
    return Services(
        settings=settings,
        authenticator=Authenticator(
            DynamoDBKeyStore(dynamodb, settings.control_table_name),
            cache_seconds=settings.key_cache_seconds,
            negative_cache_seconds=settings.key_negative_cache_seconds,
            last_used_interval=settings.key_last_used_interval_seconds,
        ),
        upstreams=UpstreamDirectory(
            secrets,
            models=settings.allowed_models,
            secret_name=settings.upstream_secret_name,
            byok_secret_name=settings.byok_secret_name,
            byok_endpoints=byok_endpoint_policy(settings),
        ),
        workspaces=WorkspaceDirectory(
            DynamoDBWorkspaceStore(dynamodb, settings.control_table_name),
            Limits.from_settings(settings),
            cache_seconds=settings.key_cache_seconds,
        ),
        limiter=RateLimiter.from_settings(
            DynamoDBCounterStore(dynamodb, settings.rate_limit_table_name, settle_policy=settle), settings
        ),
        usage=UsageLedger(usage_records, refusals=usage_records),
        azure=AzureOpenAI(http),
        http=http,
        aws_http=aws_http,
        ownership=ResponseOwnership(DynamoDBOwnershipStore(dynamodb, settings.table_name)),
        pools=pool_health(settings),
        control=control,
        admin_auth=AdminAuthenticator(
            control,
            cache_seconds=settings.key_cache_seconds,
            negative_cache_seconds=settings.key_negative_cache_seconds,
            last_used_interval=settings.key_last_used_interval_seconds,
        ),
        usage_records=usage_records,
    )


def pool_health(settings: Settings) -> PoolHealth:
    """The failover loop and cooldowns, with the settings' bounds."""
    return PoolHealth(
        max_attempts=settings.upstream_max_attempts,
        window_seconds=settings.upstream_failover_window_seconds,
    )
