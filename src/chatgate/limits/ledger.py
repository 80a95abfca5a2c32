"""Writes that did not settle: the "unsettled" line, and what `chatgate ledger replay` does with it.

A settlement write (chatgate.gateway.settlement) is retried within the settlement's time budget. One that
still
has no answer, or a failing one, is not dropped: the settlement writes one structured log line,

    {"message": "unsettled: ...", "unsettled": {"request": ..., "workspace_id": ..., "writes": [...]}}

naming each write with everything needed to apply it again (keys, amounts, the request's marker; no
secret, no prompt text), and whether its outcome is "unknown" (it may have been applied: DynamoDB was sent
the write and no answer came) or "failed" (it was not applied: refused, throttled, never sent). The line is
counted in the `UnsettledWrites` metric, which the stack alarms on. Every write carries the request's marker
under a condition (stores/markers.py), so replaying a line applies what is missing and nothing twice,
however often it is replayed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

logger = logging.getLogger(__name__)

WriteKind = Literal["reconcile", "overshoot", "usage"]
Outcome = Literal["unknown", "failed"]
KINDS: tuple[WriteKind, ...] = ("reconcile", "overshoot", "usage")


@dataclass(frozen=True)
class UnsettledWrite:
    """One settlement write not known to be applied, with what it would apply.

    reconcile: `key` (the admitting window's counter), `requests` and `tokens` to add (zero or negative),
    the admission's marker removed; overshoot: `tokens` added to a later window's counter `key`
    (`expires_at` its ttl); usage: the record of `workspace_id`, `day`, `model`, with `prompt_tokens`,
    `completion_tokens` and their `source`."""

    kind: WriteKind
    outcome: Outcome
    marker: str
    error: str
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, kind: WriteKind, marker: str, error: Exception, **fields: Any) -> UnsettledWrite:
        """From the store's error: its message (operation and code only) and whether it may have applied."""
        outcome: Outcome = "unknown" if getattr(error, "maybe_applied", True) else "failed"
        return cls(kind, outcome, marker, str(error), fields)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnsettledWrite:
        kind, outcome = data.get("kind"), data.get("outcome")
        if kind not in KINDS or outcome not in ("unknown", "failed"):
            raise ValueError(f"not an unsettled write: kind {kind!r}, outcome {outcome!r}")
        marker = data.get("marker")
        fields = data.get("fields")
        if not isinstance(marker, str) or not marker or not isinstance(fields, dict):
            raise ValueError("an unsettled write needs its marker and fields")
        return cls(kind, outcome, marker, str(data.get("error", "")), fields)


def log_unsettled(request_id: str, workspace_id: str, writes: list[UnsettledWrite]) -> None:
    """The one line a settlement writes when some of its writes did not settle."""
    described = ", ".join(f"{write.kind} {write.outcome}" for write in writes)
    logger.error(
        "unsettled: %s for workspace %s (unknown: may have been applied; failed: not applied). "
        "`chatgate ledger replay` applies what is missing, once",
        described,
        workspace_id,
        extra={
            "fields": {
                "unsettled": {
                    "request": request_id,
                    "workspace_id": workspace_id,
                    "writes": [write.to_dict() for write in writes],
                }
            }
        },
    )


def _unsettled_record(entry: Any) -> dict[str, Any] | None:
    """The `unsettled` object of a log entry: at the top (logs.JsonFormatter lifts `extra["fields"]`) or
    one level down (a logger that keeps `fields` as it is given)."""
    if not isinstance(entry, dict):
        return None
    for holder in (entry, entry.get("fields")):
        if isinstance(holder, dict) and isinstance(holder.get("unsettled"), dict):
            record: dict[str, Any] = holder["unsettled"]
            return record
    return None


def unsettled_in(lines: Iterable[str]) -> Iterator[tuple[str, UnsettledWrite]]:
    """(request id, write) of every unsettled line among log lines (other lines are skipped). A line may
    be the JSON object itself or carry it after a prefix (CloudWatch's export adds a timestamp)."""
    for line in lines:
        start = line.find("{")
        if start < 0 or '"unsettled"' not in line:
            continue
        try:
            entry = json.loads(line[start:])
        except ValueError:
            continue
        record = _unsettled_record(entry)
        if record is None:
            continue
        for write in record.get("writes") or []:
            if isinstance(write, dict):
                try:
                    yield str(record.get("request", "")), UnsettledWrite.from_dict(write)
                except ValueError as exc:
                    logger.warning("skipping an unreadable unsettled write: %s", exc)
