"""Upstream secrets in Secrets Manager, administered by the CLI (the function only reads them, through
stores/secrets.py): a bring-your-own-keys workspace's pool per region (`chatgate workspaces byok`, named by
`Settings.byok_secret_name`) and the stack's pool per region (`chatgate upstream`, named by
`Settings.upstream_secret_name`). Each holds UpstreamPool.to_secret() plus `updated_at` (epoch seconds): a
pool of one keeps the one-resource shape it always had.

Removal deletes without a recovery window: a secret scheduled for deletion cannot be read or recreated
under the same name until the window ends, which would leave the workspace unable to change its mind.
(The gateway treats a secret scheduled for deletion, e.g. deleted in the console, as absent too.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from chatgate.upstream.config import AzureResource, UpstreamPool

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class ByokStoreError(Exception):
    """Secrets Manager refused or failed; the message names the operation and error code, nothing else."""


@dataclass(frozen=True)
class ByokSecret:
    name: str
    pool: UpstreamPool
    updated_at: int | None

    @property
    def resource(self) -> AzureResource:
        """The pool's first resource by priority (the only one of a one-resource secret)."""
        found = self.pool.named(None)
        assert found is not None
        return found


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _deleted(exc: ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    return _code(exc) == "InvalidRequestException" and "delet" in message


class PoolSecrets:
    """Pool secrets by name: read, write (create or new version), delete."""

    def __init__(self, client: SecretsManagerClient) -> None:
        self._client = client

    def put(self, name: str, pool: UpstreamPool, description: str) -> None:
        text = json.dumps({**pool.to_secret(), "updated_at": int(time.time())})
        try:
            self._store(name, text, description)
        except ClientError as exc:
            raise ByokStoreError(f"Secrets Manager refused to store {name}: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ByokStoreError(f"Secrets Manager could not be reached: {type(exc).__name__}") from None

    def _store(self, name: str, text: str, description: str) -> None:
        try:
            self._client.put_secret_value(SecretId=name, SecretString=text)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                self._client.create_secret(Name=name, SecretString=text, Description=description)
            elif _deleted(exc):  # scheduled for deletion outside chatgate: bring it back, then update
                self._client.restore_secret(SecretId=name)
                self._client.put_secret_value(SecretId=name, SecretString=text)
            else:
                raise

    def get(self, name: str, region: str, workspace_id: str | None, fix: str) -> ByokSecret | None:
        try:
            response = self._client.get_secret_value(SecretId=name)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException" or _deleted(exc):
                return None
            raise ByokStoreError(f"Secrets Manager refused to read {name}: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ByokStoreError(f"Secrets Manager could not be reached: {type(exc).__name__}") from None
        try:
            value = json.loads(response.get("SecretString") or "")
            pool = UpstreamPool.from_secret(value, region, workspace_id)
        except (ValueError, AttributeError):
            raise ByokStoreError(
                f"{name} does not hold a usable configuration (the gateway answers 502 for it); {fix}"
            ) from None
        updated_at = value.get("updated_at")
        return ByokSecret(name, pool, updated_at if isinstance(updated_at, int) else None)

    def delete(self, name: str) -> bool:
        """Delete the secret at once; False if there was none. (DescribeSecret first: a forced delete
        answers success for a secret that does not exist.)"""
        try:
            self._client.describe_secret(SecretId=name)
            self._client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        except ClientError as exc:
            if _code(exc) == "ResourceNotFoundException":
                return False
            raise ByokStoreError(f"Secrets Manager refused to delete {name}: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ByokStoreError(f"Secrets Manager could not be reached: {type(exc).__name__}") from None
        return True


class ByokSecretStore:
    """A workspace's pool per region."""

    def __init__(self, client: SecretsManagerClient, secret_name: Callable[[str, str], str]) -> None:
        self._secrets = PoolSecrets(client)
        self._name = secret_name

    def put(self, workspace_id: str, region: str, resource: AzureResource) -> str:
        """Store one resource as the workspace's whole pool (`byok set`); returns the secret's name."""
        return self.put_pool(workspace_id, UpstreamPool(region, (resource,), workspace_id))

    def put_pool(self, workspace_id: str, pool: UpstreamPool) -> str:
        name = self._name(workspace_id, pool.region)
        description = f"chatgate bring-your-own-keys: workspace {workspace_id}, region {pool.region}"
        self._secrets.put(name, pool, description)
        return name

    def get(self, workspace_id: str, region: str) -> ByokSecret | None:
        fix = "store it again with `chatgate workspaces byok set`"
        return self._secrets.get(self._name(workspace_id, region), region, workspace_id, fix)

    def delete(self, workspace_id: str, region: str) -> bool:
        return self._secrets.delete(self._name(workspace_id, region))


class StackUpstreamStore:
    """The stack's pool per region (`chatgate upstream`)."""

    def __init__(self, client: SecretsManagerClient, secret_name: Callable[[str], str]) -> None:
        self._secrets = PoolSecrets(client)
        self._name = secret_name

    def put_pool(self, pool: UpstreamPool) -> str:
        name = self._name(pool.region)
        self._secrets.put(name, pool, f"chatgate upstream: region {pool.region}")
        return name

    def get(self, region: str) -> ByokSecret | None:
        fix = "add its resources again with `chatgate upstream add`"
        return self._secrets.get(self._name(region), region, None, fix)
