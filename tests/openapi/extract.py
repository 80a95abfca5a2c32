"""Extract the subset of OpenAI's published OpenAPI spec that chatgate serves and is tested against.

    python tests/openapi/extract.py SPEC.json            # rewrites every subset listed in SUBSETS

SPEC.json is `openapi.json` of github.com/openai/openai-openapi (the commit used is recorded in each subset's
`x-chatgate-source`). Each subset keeps the listed operations (by operationId) and every component schema,
parameter, response and request body they reference, transitively, so the file is a valid OpenAPI document
on its own. The tests read only the subsets committed beside this script; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent

# subset file -> the operations it keeps
SUBSETS: dict[str, list[str]] = {
    "inference.json": [
        "createChatCompletion",
        "createResponse",
        "getResponse",
        "deleteResponse",
        "listInputItems",
        "createEmbedding",
        "listModels",
        "retrieveModel",
    ],
    "admin.json": [
        "list-projects",
        "create-project",
        "retrieve-project",
        "modify-project",
        "archive-project",
        "list-project-api-keys",
        "retrieve-project-api-key",
        "delete-project-api-key",
        "list-project-service-accounts",
        "create-project-service-account",
        "retrieve-project-service-account",
        "delete-project-service-account",
        "list-project-rate-limits",
        "update-project-rate-limits",
        "usage-completions",
        "usage-embeddings",
        "admin-api-keys-list",
        "admin-api-keys-create",
        "admin-api-keys-get",
        "admin-api-keys-delete",
        "list-audit-logs",
    ],
}

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def _refs(node: Any) -> set[str]:
    """Every `$ref` string anywhere under node."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    if not ref.startswith("#/"):
        raise ValueError(f"external reference not supported: {ref}")
    node: Any = spec
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def extract(spec: dict[str, Any], operation_ids: list[str], source: str) -> dict[str, Any]:
    """A self-contained OpenAPI document with only `operation_ids` and what they reference."""
    wanted = set(operation_ids)
    paths: dict[str, Any] = {}
    for path, item in spec["paths"].items():
        kept = {
            method: operation
            for method, operation in item.items()
            if method in HTTP_METHODS and operation.get("operationId") in wanted
        }
        if kept:
            shared = {key: value for key, value in item.items() if key not in HTTP_METHODS}
            paths[path] = {**shared, **kept}
    found = {
        operation["operationId"]
        for item in paths.values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }
    missing = wanted - found
    if missing:
        raise SystemExit(f"operations not in the spec: {sorted(missing)}")

    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, kind, name = ref[2:].split("/", 2)  # "#/components/<kind>/<name>"
        target = _resolve(spec, ref)
        components.setdefault(kind, {})[name] = target
        pending |= _refs(target) - seen
    for kind, schemas in spec.get("components", {}).items():
        if kind == "securitySchemes":
            components[kind] = schemas
    return {
        "openapi": spec["openapi"],
        "info": {**spec["info"], "x-chatgate-source": source},
        "servers": spec.get("servers", []),
        "security": spec.get("security", []),
        "paths": paths,
        "components": {kind: dict(sorted(items.items())) for kind, items in sorted(components.items())},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", type=Path, help="openai-openapi's openapi.json")
    parser.add_argument("--source", default="github.com/openai/openai-openapi openapi.json")
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text(encoding="utf-8"))
    for name, operations in SUBSETS.items():
        subset = extract(spec, operations, args.source)
        (HERE / name).write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        count = sum(len(items) for items in subset["components"].values())
        print(f"{name}: {len(operations)} operations, {count} components", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
