"""Moving an existing stack's keys and limits into the control table (`chatgate control migrate`).

Before the control plane, each region's data table held its own keys (`KEY#<id>`) and limits
(`WS#<ws>/LIMITS#<model>`). The migration copies them, item for item, into the control table, and creates
a workspace record (named after its id, audited as `project.created`) for every workspace met among keys,
limits and usage records. It is idempotent: an item already in the control table is left as it is (the
first copy wins, so running it against the EU table and then the US table keeps EU's copy of a key both
had), and `--dry-run` counts without writing. Usage records stay in the data table (regional data).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatgate.admin import audit
from chatgate.admin.control import Actor, ControlStore, Workspace


class MigrationTarget(ControlStore, Protocol):
    async def copy_item(self, item: dict[str, Any]) -> bool:
        """Put the item unless one with its key exists; True if written."""
        ...


@dataclass
class MigrationReport:
    keys: int = 0
    limits: int = 0
    workspaces: int = 0
    already_there: int = 0
    workspace_ids: set[str] = field(default_factory=set)

    def lines(self, dry_run: bool) -> list[str]:
        verb = "would copy" if dry_run else "copied"
        return [
            f"keys:       {self.keys} {verb}",
            f"limits:     {self.limits} {verb}",
            f"workspaces: {self.workspaces} {'would be created' if dry_run else 'created'}",
            f"unchanged:  {self.already_there} already in the control table",
        ]


def _kind(item: dict[str, Any]) -> str | None:
    pk, sk = item["pk"]["S"], item["sk"]["S"]
    if pk.startswith("KEY#") and sk == "KEY":
        return "key"
    if pk.startswith("WS#") and sk.startswith("LIMITS#"):
        return "limits"
    if pk.startswith("WS#") and sk.startswith("USAGE#"):
        return "usage"
    return None


def _workspace_of(item: dict[str, Any], kind: str) -> str:
    return str(item["workspace_id"]["S"] if kind == "key" else item["pk"]["S"].removeprefix("WS#"))


async def migrate(
    items: Iterable[dict[str, Any]], target: MigrationTarget, actor: Actor, *, dry_run: bool
) -> MigrationReport:
    report = MigrationReport()
    for item in items:
        kind = _kind(item)
        if kind is None:
            continue
        report.workspace_ids.add(_workspace_of(item, kind))
        if kind == "usage":
            continue
        exists = (
            await target.get_key(item["pk"]["S"].removeprefix("KEY#")) is not None
            if kind == "key"
            else item["sk"]["S"].removeprefix("LIMITS#")
            in await target.get_limits(item["pk"]["S"].removeprefix("WS#"))
        )
        if exists or (not dry_run and not await target.copy_item(item)):
            report.already_there += 1
            continue
        report.keys += kind == "key"
        report.limits += kind == "limits"
    for workspace_id in sorted(report.workspace_ids):
        if await target.get_workspace(workspace_id) is not None:
            continue
        report.workspaces += 1
        if dry_run:
            continue
        workspace = Workspace(workspace_id, workspace_id, int(time.time()))
        entry = audit.entry(
            actor,
            "project.created",
            project=workspace,
            details={"id": workspace_id, "data": {"name": workspace_id}, "migrated": True},
        )
        await target.create_workspace(workspace, entry)
    return report
