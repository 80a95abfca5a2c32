"""Bring-your-own-keys secrets in Secrets Manager, administered by `chatgate workspaces byok` (the function
only reads them, through stores/secrets.py). One JSON secret per workspace and region, named by
`Settings.byok_secret_name`: AzureResource.to_secret() plus `updated_at` (epoch seconds).

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

from chatgate.upstream.config import AzureResource

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class ByokStoreError(Exception):
    """Secrets Manager refused or failed; the message names the operation and error code, nothing else."""


@dataclass(frozen=True)
class ByokSecret:
    name: str
    resource: AzureResource
    updated_at: int | None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _deleted(exc: ClientError) -> bool:
    message = str(exc.response.get("Error", {}).get("Message", "")).lower()
    return _code(exc) == "InvalidRequestException" and "delet" in message


class ByokSecretStore:
    def __init__(self, client: SecretsManagerClient, secret_name: Callable[[str, str], str]) -> None:
        self._client = client
        self._name = secret_name

    def put(self, workspace_id: str, region: str, resource: AzureResource) -> str:
        """Create the secret or store a new version of it; returns its name."""
        name = self._name(workspace_id, region)
        text = json.dumps({**resource.to_secret(), "updated_at": int(time.time())})
        description = f"chatgate bring-your-own-keys: workspace {workspace_id}, region {region}"
        try:
            self._store(name, text, description)
        except ClientError as exc:
            raise ByokStoreError(f"Secrets Manager refused to store {name}: {_code(exc)}") from None
        except BotoCoreError as exc:
            raise ByokStoreError(f"Secrets Manager could not be reached: {type(exc).__name__}") from None
        return name

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

    def get(self, workspace_id: str, region: str) -> ByokSecret | None:
        name = self._name(workspace_id, region)
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
            resource = AzureResource.from_secret(value)
        except (ValueError, AttributeError):
            raise ByokStoreError(
                f"{name} does not hold a usable configuration (the gateway answers 502 for this "
                "workspace); store it again with `chatgate workspaces byok set`"
            ) from None
        updated_at = value.get("updated_at")
        return ByokSecret(name, resource, updated_at if isinstance(updated_at, int) else None)

    def delete(self, workspace_id: str, region: str) -> bool:
        """Delete the secret at once; False if there was none. (DescribeSecret first: a forced delete
        answers success for a secret that does not exist.)"""
        name = self._name(workspace_id, region)
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
