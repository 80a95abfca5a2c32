"""Upstream pools from the command line (docs/upstreams.md): add, list and remove the resources of a pool.

    chatgate upstream add --region eu --name sweden --endpoint https://R.openai.azure.com --api-key-stdin \\
        [--priority 1] [--weight 1] [--api-version v1] [--deployment MODEL[=DEPLOYMENT] ...] < key.txt
    chatgate upstream list --region eu
    chatgate upstream remove --region eu --name sweden
    chatgate workspaces byok add | list --workspace W --region R ...   (the workspace's own pool)
    chatgate workspaces byok remove --workspace W --region R --name N  (one resource; without --name: all)

`add` adds a resource, or replaces the one of the same name; the pool's other resources are kept as they
are (a one-resource secret's resource is called "default"). Keys come from standard input, never from the
command line, and are never printed. A region's pool only ever holds that region's resources: the secret's
name carries the region. The gateway follows a change within CHATGATE_SECRET_MAX_AGE_SECONDS.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from chatgate.cli.byok import (
    byok_store,
    check_endpoint,
    check_workspace,
    local_secrets_manager,
    parse_deployments,
    read_api_key,
)
from chatgate.cli.common import Commands, fail, print_table, runs, secretsmanager, when
from chatgate.settings import KNOWN_REGIONS, Settings
from chatgate.upstream.config import (
    DEFAULT_API_VERSION,
    AzureResource,
    EndpointPolicy,
    UpstreamPool,
    normalize_api_version,
    resource_name,
)

if TYPE_CHECKING:
    from chatgate.stores.byok_secrets import ByokSecret, StackUpstreamStore


def register_upstream(commands: Commands) -> None:
    upstream = commands.add_parser("upstream", help="the stack's Azure OpenAI resources per region (a pool)")
    upstream_commands = upstream.add_subparsers(title="upstream commands", required=True)
    add = upstream_commands.add_parser("add", help="add (or replace) a resource of a region's pool")
    _region(add)
    resource_arguments(add)
    add.set_defaults(run=runs(run_upstream_add))
    listing = upstream_commands.add_parser("list", help="list a region's resources (never the keys)")
    _region(listing)
    listing.set_defaults(run=runs(run_upstream_list))
    remove = upstream_commands.add_parser("remove", help="remove a resource from a region's pool")
    _region(remove)
    remove.add_argument("--name", required=True)
    remove.set_defaults(run=runs(run_upstream_remove))


def register_byok_pool(byok_commands: Commands) -> None:
    add = byok_commands.add_parser("add", help="add (or replace) a resource of the workspace's pool")
    add.add_argument("--workspace", required=True)
    _region(add)
    resource_arguments(add)
    add.set_defaults(run=runs(run_byok_add))
    listing = byok_commands.add_parser("list", help="list the workspace's resources (never the keys)")
    listing.add_argument("--workspace", required=True)
    _region(listing)
    listing.set_defaults(run=runs(run_byok_list))


def store_errors(function: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """A command whose Secrets Manager failures end it with their message (ByokStoreError names the
    operation and error code, nothing else)."""

    def run(args: argparse.Namespace) -> int:
        from chatgate.stores.byok_secrets import ByokStoreError

        try:
            return function(args)
        except ByokStoreError as error:
            fail(str(error))

    return run


def _region(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", required=True, choices=KNOWN_REGIONS)


def resource_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags that describe one resource of a pool."""
    parser.add_argument(
        "--name", required=True, help="the resource's name in logs, metrics and usage records"
    )
    parser.add_argument("--endpoint", required=True, help="https://<resource>.openai.azure.com")
    parser.add_argument(
        "--api-key-stdin", action="store_true", help="read the Azure API key from standard input"
    )
    parser.add_argument("--api-key", dest="api_key_argument", help=argparse.SUPPRESS)
    parser.add_argument("--api-version", default=DEFAULT_API_VERSION, help="v1 (default) or a dated version")
    parser.add_argument("--priority", type=int, default=1, help="smaller first (default 1)")
    parser.add_argument("--weight", type=float, default=1.0, help="share within a priority (default 1)")
    parser.add_argument(
        "--deployment",
        action="append",
        default=[],
        metavar="MODEL[=DEPLOYMENT]",
        help="a model this resource deploys; repeat. None: every model, on deployments named like them",
    )


def resource_from(args: argparse.Namespace, endpoint: str) -> AzureResource:
    """The resource the flags describe (the key read from standard input last, after every check)."""
    if args.api_key_argument is not None:
        fail("the API key is never accepted as an argument: pass --api-key-stdin and pipe the key in", 2)
    if not args.api_key_stdin:
        fail("--api-key-stdin is required: pipe the Azure API key in on standard input", 2)
    try:
        values = {
            "endpoint": endpoint,
            "api_key": "-",
            "api_version": normalize_api_version(args.api_version),
            "deployments": parse_deployments(args.deployment),
            "name": resource_name(args.name),
            "priority": args.priority,
            "weight": args.weight,
        }
        checked = AzureResource.from_secret(values)
    except ValueError as error:
        fail(str(error), 2)
    return AzureResource.from_secret({**checked.to_secret(in_pool=True), "api_key": read_api_key()})


def with_resource(
    pool: UpstreamPool | None, resource: AzureResource, region: str, workspace: str | None
) -> UpstreamPool:
    kept = tuple(r for r in (pool.resources if pool else ()) if r.name != resource.name)
    return UpstreamPool(region, (*kept, resource), workspace)


def without_resource(secret: ByokSecret | None, name: str, where: str) -> UpstreamPool:
    if secret is None or secret.pool.named(name) is None:
        fail(f"{where} has no resource named {name!r}")
    kept = tuple(r for r in secret.pool.resources if r.name != name)
    if not kept:
        fail(f"{name!r} is the last resource of {where}: a pool needs at least one")
    return UpstreamPool(secret.pool.region, kept, secret.pool.byok_workspace)


def print_pool(secret: ByokSecret | None, where: str, settings: Settings) -> None:
    if secret is None:
        print(f"{where}: no resources configured")
        return
    print(f"{where}: {len(secret.pool.resources)} resource(s), stored in {secret.name} (keys never shown)")
    rows = [["name", "priority", "weight", "api version", "endpoint", "models"]]
    for r in sorted(secret.pool.resources, key=lambda r: (r.priority, r.name)):
        models = ", ".join(f"{m}->{d}" if m != d else m for m, d in r.deployments.items()) or "every model"
        rows.append([r.name, str(r.priority), f"{r.weight:g}", r.api_version, r.endpoint, models])
    print_table(rows)
    print(f"updated: {when(secret.updated_at)}; requests follow within {settings.secret_max_age_seconds} s")


# --- the stack's pool ---------------------------------------------------------------------------------


def stack_store(settings: Settings) -> StackUpstreamStore:
    from chatgate.stores.byok_secrets import StackUpstreamStore

    return StackUpstreamStore(secretsmanager(settings), settings.upstream_secret_name)


def _stack_endpoint(url: str) -> str:
    """Any https host (a stack's resource may sit behind a gateway of the organisation's own), or plain
    http on loopback when the secrets go to a local emulator (`chatgate dev`)."""
    endpoint = url.strip().rstrip("/")
    problem = EndpointPolicy(("",), allow_http_loopback=local_secrets_manager()).problem(endpoint)
    if problem is not None:
        fail(f"--endpoint must be a base URL like https://NAME.openai.azure.com (got {url!r}: {problem})", 2)
    return endpoint


@store_errors
def run_upstream_add(args: argparse.Namespace) -> int:
    settings = Settings()
    resource = resource_from(args, _stack_endpoint(args.endpoint))
    store = stack_store(settings)
    current = store.get(args.region)
    store.put_pool(with_resource(current.pool if current else None, resource, args.region, None))
    print_pool(store.get(args.region), f"upstream {args.region}", settings)
    return 0


@store_errors
def run_upstream_list(args: argparse.Namespace) -> int:
    settings = Settings()
    print_pool(stack_store(settings).get(args.region), f"upstream {args.region}", settings)
    return 0


@store_errors
def run_upstream_remove(args: argparse.Namespace) -> int:
    settings = Settings()
    store = stack_store(settings)
    where = f"upstream {args.region}"
    store.put_pool(without_resource(store.get(args.region), args.name, where))
    print_pool(store.get(args.region), where, settings)
    return 0


# --- a workspace's own pool ---------------------------------------------------------------------------


@store_errors
def run_byok_add(args: argparse.Namespace) -> int:
    workspace = check_workspace(args.workspace)
    settings = Settings()
    resource = resource_from(args, check_endpoint(args.endpoint))
    store = byok_store(settings)
    current = store.get(workspace, args.region)
    store.put_pool(
        workspace, with_resource(current.pool if current else None, resource, args.region, workspace)
    )
    print_pool(store.get(workspace, args.region), f"workspace {workspace}, region {args.region}", settings)
    return 0


@store_errors
def run_byok_list(args: argparse.Namespace) -> int:
    workspace = check_workspace(args.workspace)
    settings = Settings()
    print_pool(
        byok_store(settings).get(workspace, args.region),
        f"workspace {workspace}, region {args.region}",
        settings,
    )
    return 0


@store_errors
def run_byok_remove_resource(args: argparse.Namespace) -> int:
    """`byok remove --name N`: one resource of the workspace's pool (the last one: use remove alone)."""
    workspace = check_workspace(args.workspace)
    settings = Settings()
    store = byok_store(settings)
    where = f"workspace {workspace}, region {args.region}"
    store.put_pool(workspace, without_resource(store.get(workspace, args.region), args.name, where))
    print_pool(store.get(workspace, args.region), where, settings)
    return 0
