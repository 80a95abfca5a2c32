"""usage/completions' and usage/embeddings' buckets are the ledger's records of their API, summed per UTC
day and per group, paged."""

from __future__ import annotations

from datetime import UTC, datetime

from chatgate.admin.control import Actor, Page, Workspace
from chatgate.admin.usage import DAY, UsageQuery, usage_buckets
from chatgate.limits.usage import EMBEDDINGS, UsageRecord

ORG = Actor("api_key", key_id="org")
ACME_ADMIN = Actor("api_key", key_id="acme-admin", project_id="acme")
D1 = int(datetime(2026, 3, 1, tzinfo=UTC).timestamp())


class Ledger:
    """The UsageReader port over a list of records."""

    def __init__(self, rows: list[UsageRecord]) -> None:
        self.rows = rows

    async def records(self, workspace_id: str, first_day: str, last_day: str) -> list[UsageRecord]:
        return [r for r in self.rows if r.workspace_id == workspace_id and first_day <= r.day <= last_day]


class Workspaces:
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    async def list_workspaces(
        self, *, after: str | None, limit: int, include_archived: bool
    ) -> Page[Workspace]:
        rest = [i for i in self.ids if after is None or i > after]
        return Page([Workspace(i, i, 0) for i in rest[:limit]], has_more=len(rest) > limit)


def ledger() -> Ledger:
    records = [
        UsageRecord("acme", "2026-03-01", "gpt-4o", requests=2, prompt_tokens=10, completion_tokens=5),
        UsageRecord("acme", "2026-03-01", "gpt-4o-mini", requests=1, prompt_tokens=3, completion_tokens=4),
        UsageRecord("acme", "2026-03-03", "gpt-4o", requests=5, prompt_tokens=50, completion_tokens=25),
        UsageRecord("globex", "2026-03-01", "gpt-4o", requests=7, prompt_tokens=70, completion_tokens=1),
        UsageRecord(
            "acme", "2026-03-01", "text-embedding-3-small", requests=4, prompt_tokens=40, api=EMBEDDINGS
        ),
        UsageRecord(
            "globex", "2026-03-03", "text-embedding-3-small", requests=1, prompt_tokens=9, api=EMBEDDINGS
        ),
    ]
    return Ledger(records)


async def buckets(
    actor: Actor, **query: object
) -> tuple[list[tuple[int, list[tuple[object, ...]]]], int | None]:
    found, next_page = await usage_buckets(
        Workspaces(["acme", "globex"]),  # type: ignore[arg-type]
        ledger(),
        actor,
        UsageQuery(**{"start_time": D1, "end_time": D1 + 3 * DAY, **query}),  # type: ignore[arg-type]
    )
    return [
        (
            b.start_time,
            [(r.project_id, r.model, r.input_tokens, r.output_tokens, r.requests) for r in b.results],
        )
        for b in found
    ], next_page


async def test_days_are_summed_across_workspaces_and_models_when_not_grouped() -> None:
    found, next_page = await buckets(ORG)
    assert found == [
        (D1, [(None, None, 83, 10, 10)]),
        (D1 + DAY, []),
        (D1 + 2 * DAY, [(None, None, 50, 25, 5)]),
    ]
    assert next_page is None


async def test_groups_filters_and_pages() -> None:
    found, next_page = await buckets(ORG, group_by=("project_id", "model"), limit=1)
    assert found == [
        (D1, [("acme", "gpt-4o", 10, 5, 2), ("acme", "gpt-4o-mini", 3, 4, 1), ("globex", "gpt-4o", 70, 1, 7)])
    ]
    assert next_page == D1 + DAY
    found, next_page = await buckets(ORG, group_by=("model",), models=frozenset({"gpt-4o"}), page=next_page)
    assert found == [(D1 + DAY, []), (D1 + 2 * DAY, [(None, "gpt-4o", 50, 25, 5)])]
    assert next_page is None


async def test_a_workspace_admin_reads_its_own_workspace_only() -> None:
    found, _ = await buckets(ACME_ADMIN, group_by=("project_id",))
    assert found[0] == (D1, [("acme", None, 13, 9, 3)])
    found, _ = await buckets(ACME_ADMIN, project_ids=frozenset({"globex"}))
    assert all(not results for _, results in found)  # as if globex did not exist


async def test_embeddings_are_summed_apart_from_completions() -> None:
    found, _ = await buckets(ORG, api=EMBEDDINGS, group_by=("project_id", "model"))
    assert found == [
        (D1, [("acme", "text-embedding-3-small", 40, 0, 4)]),
        (D1 + DAY, []),
        (D1 + 2 * DAY, [("globex", "text-embedding-3-small", 9, 0, 1)]),
    ]
    found, _ = await buckets(ACME_ADMIN, api=EMBEDDINGS)
    assert [results for _, results in found] == [[(None, None, 40, 0, 4)], [], []]
