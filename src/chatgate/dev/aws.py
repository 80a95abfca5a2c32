"""Local AWS for `chatgate dev` and the tests: moto in server mode, and the resources chatgate expects.

Nothing here runs in Lambda. `ensure_resources` is idempotent: tables and secrets are created if missing,
so it is safe against a long-lived emulator (or a real account) pointed to with AWS_ENDPOINT_URL*.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from chatgate.settings import Settings
from chatgate.stores import schema
from chatgate.upstream.config import DEFAULT_API_VERSION

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

logger = logging.getLogger(__name__)

AWS_ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SECRETS_MANAGER")


def external_aws_configured() -> bool:
    """True when the standard endpoint variables point boto3 at an AWS-compatible endpoint already."""
    return any(os.environ.get(name) for name in AWS_ENDPOINT_VARIABLES)


def start_moto(host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadedMotoServer, str]:
    """moto's server in a daemon thread; returns it and its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    bound_host, bound_port = server.get_host_and_port()
    return server, f"http://{bound_host}:{bound_port}"


def use_local_credentials() -> None:
    """Emulators accept any credentials; make sure boto3 finds some and a region."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-central-1")


def ensure_tables(client: DynamoDBClient, settings: Settings) -> None:
    existing = set(client.list_tables()["TableNames"])
    for definition in (
        schema.data_table(settings.table_name),
        schema.control_table(settings.control_table_name),
        schema.rate_limit_table(settings.rate_limit_table_name),
    ):
        name = definition["TableName"]
        if name in existing:
            continue
        client.create_table(**definition)
        client.get_waiter("table_exists").wait(TableName=name)
        enable_ttl(client, name)


def enable_ttl(client: DynamoDBClient, table: str) -> bool:
    """Turn on expiry of the `ttl` attribute; True if done. Some AWS-compatible endpoints (dynalite) do not
    implement UpdateTimeToLive: then warn and go on, since locally nothing depends on items expiring (the
    rate-limit counters are keyed by window and read as zero once their window is over)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        client.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL_ATTRIBUTE},
        )
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
        logger.warning(
            "table %s: this DynamoDB endpoint did not enable TTL (%s); continuing without item expiry",
            table,
            code or type(exc).__name__,
        )
        return False
    return True


def put_secret(client: SecretsManagerClient, name: str, value: Mapping[str, Any]) -> None:
    """Create the secret, or store a new version of it."""
    text = json.dumps(value)
    try:
        client.put_secret_value(SecretId=name, SecretString=text)
    except client.exceptions.ResourceNotFoundException:
        client.create_secret(Name=name, SecretString=text)


def upstreams_from_environment(
    regions: tuple[str, ...], environ: Mapping[str, str]
) -> dict[str, dict[str, Any]]:
    """The Azure upstream per region from AZURE_OPENAI_* variables (region suffix wins), if set."""
    found: dict[str, dict[str, Any]] = {}
    for region in regions:
        suffix = f"_{region.upper()}"

        def get(name: str, suffix: str = suffix) -> str | None:
            return environ.get(f"{name}{suffix}") or environ.get(name)

        endpoint = get("AZURE_OPENAI_ENDPOINT")
        if endpoint:
            found[region] = {
                "endpoint": endpoint,
                "api_key": get("AZURE_OPENAI_API_KEY") or "",
                "api_version": get("AZURE_OPENAI_API_VERSION") or DEFAULT_API_VERSION,
            }
    return found
