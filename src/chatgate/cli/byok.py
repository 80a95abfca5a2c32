"""`chatgate workspaces byok set | show | remove`: a workspace's own Azure OpenAI resource, per region.

    chatgate workspaces byok set --workspace W --region eu --endpoint https://R.openai.azure.com \\
        --api-key-stdin [--api-version v1|DATE[-preview]] [--deployment MODEL[=DEPLOYMENT] ...] < key.txt

The API key is read from standard input (a prompt without echo on a terminal), never from the command line,
and is never printed or logged. The models the workspace may use are the --deployment models; without any
--deployment, the stack's models (CHATGATE_MODELS), each on a deployment of the same name, which is how
the stack's own upstream maps models by default. Requests follow the change on every instance within
CHATGATE_SECRET_MAX_AGE_SECONDS. Rate limits stay per workspace and model: `chatgate workspaces limits`.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import re
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from chatgate.admin import byok as admin_byok
from chatgate.admin.control import CLI
from chatgate.cli.common import Commands, control_store, fail, run_async, runs, secretsmanager, when
from chatgate.errors import NotFound
from chatgate.settings import KNOWN_REGIONS, Settings
from chatgate.upstream.config import (
    DEFAULT_API_VERSION,
    AzureResource,
    EndpointPolicy,
    byok_capable,
    byok_endpoint_policy,
    normalize_api_version,
)

if TYPE_CHECKING:
    from chatgate.stores.byok_secrets import ByokSecretStore

# Model and deployment names: what CHATGATE_MODELS allows (and Azure deployment names use).
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_KEY_LENGTH = 1024


def register(workspace_commands: Commands) -> None:
    byok = workspace_commands.add_parser("byok", help="bring-your-own-keys: the workspace's own Azure")
    byok_commands = byok.add_subparsers(title="byok commands", required=True)

    set_ = byok_commands.add_parser("set", help="store the workspace's Azure OpenAI resource for a region")
    _where(set_)
    set_.add_argument("--endpoint", required=True, help="https://<resource>.openai.azure.com")
    set_.add_argument(
        "--api-key-stdin",
        action="store_true",
        help="read the Azure API key from standard input (required: it is never accepted as an argument)",
    )
    # Recognised only to refuse it without echoing the value (argparse would print unknown arguments).
    set_.add_argument("--api-key", dest="api_key_argument", help=argparse.SUPPRESS)
    set_.add_argument(
        "--api-version",
        default=DEFAULT_API_VERSION,
        help="Azure's surface for chat completions: v1 (default; serves every model) or a dated version "
        "such as 2025-04-01-preview (reasoning models need 2024-12-01-preview or later)",
    )
    set_.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="MODEL[=DEPLOYMENT]",
        help="a model the workspace may use and its Azure deployment (default: the model's name); "
        "repeat for each model. None: the stack's models, on deployments named like them",
    )
    set_.set_defaults(run=runs(run_set))

    show = byok_commands.add_parser("show", help="show the configuration (never the key)")
    _where(show)
    show.set_defaults(run=runs(run_show))

    remove = byok_commands.add_parser("remove", help="go back to the stack's upstream")
    _where(remove)
    remove.set_defaults(run=runs(run_remove))


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--region", required=True, choices=KNOWN_REGIONS)


def byok_store(settings: Settings) -> ByokSecretStore:
    from chatgate.stores.byok_secrets import ByokSecretStore

    return ByokSecretStore(secretsmanager(settings), settings.byok_secret_name)


# --- checks ---------------------------------------------------------------------------------------------


def check_workspace(workspace: str) -> str:
    if not byok_capable(workspace):
        fail(
            f"workspace {workspace!r} cannot have its own keys: its id must be 1 to 128 letters, digits "
            "or _+=.@- (it names a Secrets Manager secret)",
            2,
        )
    return workspace


def check_endpoint(url: str, settings: Settings | None = None) -> str:
    """The check the gateway applies when it serves (upstream/config.py EndpointPolicy): https on an Azure
    host (CHATGATE_BYOK_ENDPOINT_SUFFIXES). Plain-http loopback endpoints pass as they do in `chatgate dev`:
    when the suffix variable is unset and the secret goes to a local emulator (a loopback AWS endpoint)."""
    settings = settings or Settings()
    endpoint = url.strip().rstrip("/")
    local = settings.byok_endpoint_suffixes_csv is None and _local_secrets_manager()
    policy = byok_endpoint_policy(settings)
    if local and not policy.allow_http_loopback:
        policy = EndpointPolicy(policy.suffixes, allow_http_loopback=True)
    problem = policy.problem(endpoint)
    if problem is not None:
        fail(
            f"--endpoint must be a base URL like https://NAME.openai.azure.com (got {url!r}: {problem})",
            2,
        )
    return endpoint


def _local_secrets_manager() -> bool:
    """Whether boto3 writes the secret to an emulator on this machine (`chatgate dev`, tests)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_SECRETS_MANAGER") or os.environ.get("AWS_ENDPOINT_URL")
    host = urlsplit(endpoint).hostname if endpoint else None
    if not host:
        return False
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_deployments(specs: list[str]) -> dict[str, str]:
    """MODEL[=DEPLOYMENT] flags as an ordered map; a model named twice must say the same thing twice."""
    deployments: dict[str, str] = {}
    for spec in specs:
        model, _, deployment = spec.partition("=")
        model, deployment = model.strip(), (deployment.strip() or model.strip())
        if not _NAME.fullmatch(model) or not _NAME.fullmatch(deployment):
            fail(f"--deployment {spec!r}: expected MODEL=DEPLOYMENT (letters, digits, '.', '_', '-')", 2)
        if deployments.get(model, deployment) != deployment:
            fail(f"--deployment: model {model!r} is given two deployments", 2)
        deployments[model] = deployment
    return deployments


def read_api_key() -> str:
    """The key from standard input: a prompt without echo on a terminal, else the first line."""
    if sys.stdin.isatty():
        key = getpass.getpass("Azure OpenAI API key (not echoed): ")
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        fail("no API key on standard input (pipe it in, e.g. `... --api-key-stdin < key.txt`)", 2)
    if len(key) > _MAX_KEY_LENGTH or any(c.isspace() or not c.isprintable() for c in key):
        fail("the API key on standard input is not a single line of printable characters", 2)
    return key


# --- commands -------------------------------------------------------------------------------------------


def _models_lines(resource: AzureResource, settings: Settings) -> list[str]:
    if not resource.deployments:
        return [
            f"  models:      the stack's models (CHATGATE_MODELS, here {', '.join(settings.models)}),",
            "               each on the Azure deployment of the same name",
        ]
    pairs = [f"{model} -> {deployment}" for model, deployment in resource.deployments.items()]
    return [f"  models:      {pairs[0]}", *(f"               {pair}" for pair in pairs[1:])]


def run_set(args: argparse.Namespace) -> int:
    from chatgate.stores.byok_secrets import ByokStoreError

    if args.api_key_argument is not None:
        fail(
            "the API key is never accepted as an argument (it would stay in your shell history and the "
            "process list): pass --api-key-stdin and pipe the key in, and consider rotating that key",
            2,
        )
    if not args.api_key_stdin:
        fail("--api-key-stdin is required: pipe the Azure API key in on standard input", 2)
    workspace = check_workspace(args.workspace)
    try:
        api_version = normalize_api_version(args.api_version)
    except ValueError as error:
        fail(str(error), 2)
    resource = AzureResource(
        endpoint=check_endpoint(args.endpoint),
        api_key=read_api_key(),
        api_version=api_version,
        deployments=parse_deployments(args.deployment),
    )
    settings = Settings()
    try:
        secret = run_async(
            admin_byok.set_resource(
                control_store(settings), byok_store(settings), CLI, workspace, args.region, resource
            )
        )
    except ByokStoreError as error:
        fail(str(error))
    name = secret.name
    print(f"workspace {workspace}, region {args.region}: bring-your-own-keys stored")
    print(f"  endpoint:    {resource.endpoint}")
    print(f"  api version: {resource.api_version}")
    print(f"  api key:     stored in Secrets Manager as {name} (never shown)")
    print("\n".join(_models_lines(resource, settings)))
    print(
        f"Requests from {workspace} to /openai/{args.region}/v1 use this resource within "
        f"{settings.secret_max_age_seconds} s (CHATGATE_SECRET_MAX_AGE_SECONDS) on every instance. "
        f"Rate limits: `chatgate workspaces limits set --workspace {workspace} ...`."
    )
    return 0


def run_show(args: argparse.Namespace) -> int:
    from chatgate.stores.byok_secrets import ByokStoreError

    workspace = check_workspace(args.workspace)
    settings = Settings()
    try:
        secret = byok_store(settings).get(workspace, args.region)
    except ByokStoreError as error:
        fail(str(error))
    if secret is None:
        print(
            f"workspace {workspace}, region {args.region}: no bring-your-own-keys configuration "
            "(requests use the stack's upstream and models)"
        )
        return 0
    print(f"workspace {workspace}, region {args.region}: bring-your-own-keys")
    print(f"  endpoint:    {secret.resource.endpoint}")
    print(f"  api version: {secret.resource.api_version}")
    print(f"  api key:     stored in Secrets Manager as {secret.name} (never shown)")
    print("\n".join(_models_lines(secret.resource, settings)))
    print(f"  updated:     {when(secret.updated_at)}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from chatgate.stores.byok_secrets import ByokStoreError

    workspace = check_workspace(args.workspace)
    settings = Settings()
    try:
        run_async(
            admin_byok.remove_resource(
                control_store(settings), byok_store(settings), CLI, workspace, args.region
            )
        )
    except ByokStoreError as error:
        fail(str(error))
    except NotFound:
        fail(f"workspace {workspace} has no bring-your-own-keys configuration for region {args.region}")
    print(
        f"workspace {workspace}, region {args.region}: bring-your-own-keys removed; requests use the "
        f"stack's upstream and models within {settings.secret_max_age_seconds} s"
    )
    return 0
